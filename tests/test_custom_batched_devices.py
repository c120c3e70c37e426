"""A custom device that brings its own batched version (``build_batched``) in both envs.

The documented interface (docs/vector-env.md, ``powergrid.devices.batched``): params with
``build_batched(num_envs)`` give the core that ``BatchedDevice``; the scalar env steps the
Python device itself (``PerRowDevices(share=True)``), so ``devices(a)`` stays live. The
device here is the heat pump of test_batched_devices.py with a numpy batch version.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from powergrid.devices.batched import BatchContext, BatchedDevice, batched
from powergrid.envs.config import default_microgrids
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids
from tests.test_batched_devices import HeatPump, HeatPumpParams

B, SEED, STEPS = 3, 5, 24


class BatchedHeatPump(BatchedDevice):
    """``HeatPump`` over B rows in numpy: the same formulas in the same order."""

    action_labels, obs_labels = HeatPump.action_labels, HeatPump.obs_labels

    def __init__(self, params: HeatPumpParams, num_envs: int) -> None:
        self.params, self.num_envs = params, num_envs
        self.name, self.bus = params.name, params.bus
        self.temp, self.p_kw, self.cost = (np.zeros(num_envs) for _ in range(3))
        self.q_kvar = np.zeros(num_envs)
        self.clipped = np.zeros(num_envs, bool)

    def reset(self, mask=None, rngs=None) -> None:
        for b in np.flatnonzero(self._mask(mask)):
            self.temp[b] = rngs[b].uniform(-1, 1)
            self.p_kw[b], self.cost[b], self.clipped[b] = 0.0, 0.0, False

    def step(self, actions: np.ndarray, ctx: BatchContext) -> np.ndarray:
        want = (self._actions(actions)[:, 0] + 1.0) / 2.0 * self.params.p_max_kw
        power = np.minimum(want, 60.0)
        self.clipped, self.p_kw = power != want, -power
        self.temp += power * ctx.dt_hours / 100.0 - 0.1 * ctx.pv_per_kw
        self.cost = 0.01 * power * np.where((ctx.hour >= 17) & (ctx.hour < 21), 2.0, 1.0)
        return self.p_kw

    def observe(self) -> np.ndarray:
        return np.stack([self.temp, (self.p_kw < 0.0).astype(float)], axis=1)

    def observation_bounds(self) -> tuple[tuple[float, float], ...]:
        return HeatPump.obs_bounds


@dataclass(frozen=True)
class OwnBatchParams(HeatPumpParams):
    def build_batched(self, num_envs: int) -> BatchedDevice:
        return BatchedHeatPump(self, num_envs)


def config() -> dict:
    mg1, mg2 = default_microgrids()
    return {"microgrids": [mg1, replace(mg2, devices=(*mg2.devices, OwnBatchParams()))],
            "max_episode_steps": STEPS, "start_day": 172}


def vector_env() -> VectorMicrogrids:
    """B envs whose core steps each device's own batched version."""
    vec = VectorMicrogrids(B, config())
    assert isinstance(vec.sim.devices[1][-1], BatchedHeatPump)
    return vec


def episode_actions(vec: VectorMicrogrids) -> list[dict[str, np.ndarray]]:
    """One episode of (B, act_dim) actions, a little beyond [-1, 1] (clipping too)."""
    rng = np.random.default_rng(SEED)
    return [{a: rng.uniform(-1.2, 1.2, (B, *vec.single_action_space(a).shape))
             for a in vec.possible_agents} for _ in range(STEPS)]


def test_the_batched_heat_pump_equals_the_python_one_row_by_row():
    bat, rows = batched(OwnBatchParams(), B), [OwnBatchParams().build() for _ in range(B)]
    assert isinstance(bat, BatchedHeatPump)
    bat.reset(None, [np.random.default_rng(b) for b in range(B)])
    for b, d in enumerate(rows):
        d.reset(np.random.default_rng(b))
    rng = np.random.default_rng(0)
    for t in range(STEPS):
        ctx = BatchContext(np.full(B, t % 24), 1.0, rng.uniform(0, 1, B))
        acts = rng.uniform(-1, 1, (B, 1))
        bat.step(acts, ctx)
        for b, d in enumerate(rows):
            d.step(acts[b], ctx.row(b))
            assert (bat.p_kw[b], bat.cost[b], bat.clipped[b]) == (d.p_kw, d.cost, d.clipped)
            assert tuple(bat.observe()[b]) == d.observe()


def test_the_vector_env_steps_the_devices_own_batched_version():
    vec = VectorMicrogrids(B, config())
    assert any(isinstance(d, BatchedHeatPump) for d in vec.sim.devices[1])


def test_scalar_and_vector_env_agree_over_a_full_episode():
    vec = vector_env()
    envs = [MultiAgentMicrogrids(config()) for _ in range(B)]
    obs_v, _ = vec.reset(seed=SEED)
    obs_s = [e.reset(seed=SEED + b)[0] for b, e in enumerate(envs)]
    for acts in episode_actions(vec):
        for a in vec.possible_agents:
            np.testing.assert_array_equal(obs_v[a], np.stack([o[a] for o in obs_s]))
        obs_v, rew_v, _, trunc_v, _ = vec.step(acts)
        steps = [e.step({a: acts[a][b] for a in e.agents}) for b, e in enumerate(envs)]
        obs_s = [s[0] for s in steps]
        for a in vec.possible_agents:
            assert rew_v[a].tolist() == [s[1][a] for s in steps], a
    assert all(trunc_v[a].all() for a in vec.possible_agents)  # the whole episode ran


def test_the_scalar_env_devices_show_the_state_of_the_last_step():
    env = MultiAgentMicrogrids(config())
    env.reset(seed=SEED)
    pump = next(d for d in env.devices("MG2") if d.name == "hp")
    k, rng = env.action_labels["MG2"].index("hp.power"), np.random.default_rng(SEED)
    for _ in range(STEPS):
        acts = {a: rng.uniform(-1, 1, env.action_space(a).shape) for a in env.agents}
        _, _, _, _, infos = env.step(acts)
        assert infos["MG2"]["devices"]["hp"] == {"p_kw": pump.p_kw, "cost": pump.cost}
        assert pump.p_kw == -min((acts["MG2"][k] + 1.0) / 2.0 * 80.0, 60.0)
