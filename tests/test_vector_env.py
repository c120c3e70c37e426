"""VectorMicrogrids must reproduce B scalar MultiAgentMicrogrids envs step for step."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from heron.market import PairFees, UniformPrice
from heron.protocols import ConsensusProtocol, PriceSignalProtocol
from heron.protocols.horizontal import P2PTradingProtocol
from heron.protocols.vertical import SetpointProtocol
from powergrid.devices import DeviceParams, PowerDevice
from powergrid.envs.config import default_microgrids
from powergrid.envs.coordination import tariff_price_signal
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids
from powergrid.network_costs import NETWORK_COST_TERMS, NETWORK_DSO_KEYS
from powergrid.scenarios import get

B = 4
PF_OBS = ("v_min_pu", "v_max_pu")  # power-flow derived: solver tolerance, not round-off
EXACT_COSTS = ("generation", "degradation", "other_devices", "grid_import",
               "grid_export_revenue", "p2p_payment", "p2p_revenue", "fees", "storage_terminal")


def three_microgrids():
    mg1, mg2 = default_microgrids()
    return [mg1, mg2, replace(mg2, name="MG3", peak_load_kw=700.0, load_profile="commercial")]


def run_both(config: dict, seed: int = 7, episodes: float = 2.5,
             mask_reset: tuple[int, np.ndarray] | None = None, rel: float = 0.0
             ) -> dict[str, float]:
    """Step B scalar envs and one vector env with the same actions; assert equality.

    ``mask_reset=(k, mask)`` resets the masked rows (and their scalar envs) before step k;
    ``rel`` adds a relative tolerance to rewards, totals and network costs.
    """
    vec = VectorMicrogrids(B, config)
    envs = [MultiAgentMicrogrids(config) for _ in range(B)]
    obs_v, _ = vec.reset(seed=seed)
    obs_s = [e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]
    agents = vec.possible_agents
    labels = vec.obs_labels
    for a in agents:
        assert vec.single_observation_space(a) == envs[0].observation_space(a)
        assert vec.single_action_space(a) == envs[0].action_space(a)
        _check_obs(labels[a], [o[a] for o in obs_s], obs_v[a])
    rng = np.random.default_rng(seed)
    stats = {"traded": 0.0, "autoresets": 0}
    n_steps = int(episodes * (vec.config.max_episode_steps + 1))
    for k in range(n_steps):
        if mask_reset is not None and k == mask_reset[0]:
            obs_v, _ = vec.reset(options={"reset_mask": mask_reset[1]})
            for i in np.flatnonzero(mask_reset[1]):
                obs, _ = envs[i].reset()
                for a in agents:
                    _check_obs(labels[a], [obs[a]], obs_v[a][i:i + 1])
        # Beyond [-1, 1] on purpose: clipping must match too.
        acts = {a: rng.uniform(-1.2, 1.2, (B, *vec.single_action_space(a).shape))
                for a in agents}
        obs_v, rew_v, term_v, trunc_v, info_v = vec.step(acts)
        for i, env in enumerate(envs):
            if not env.agents:  # NEXT_STEP autoreset: vector env resets, reward 0
                obs, _ = env.reset()
                assert all(info_v[a]["autoreset"][i] for a in agents)
                assert all(rew_v[a][i] == 0.0 and not trunc_v[a][i] for a in agents)
                stats["autoresets"] += 1
                for a in agents:
                    _check_obs(labels[a], [obs[a]], obs_v[a][i:i + 1])
                continue
            obs, rew, term, trunc, info = env.step({a: acts[a][i] for a in agents})
            for a in agents:
                assert not info_v[a]["autoreset"][i]
                _check_obs(labels[a], [obs[a]], obs_v[a][i:i + 1])
                assert rew_v[a][i] == pytest.approx(rew[a], abs=1e-6, rel=rel)
                assert term_v[a][i] == term[a] and trunc_v[a][i] == trunc[a]
            for a in vec.microgrid_agents:
                _check_infos(info_v[a], info[a], i, rel)
                stats["traded"] += info[a]["market"]["bought_kwh"]
    assert stats["autoresets"] >= B * 2  # crossed at least two episode boundaries
    return stats


def _check_infos(iv: dict, ic: dict, i: int, rel: float = 0.0) -> None:
    for k in EXACT_COSTS:
        assert iv["costs"][k][i] == pytest.approx(ic["costs"][k], abs=1e-9), k
    for k in ("safety_penalty", "tracking_penalty"):
        assert iv["costs"][k][i] == pytest.approx(ic["costs"][k], abs=1e-6), k
    assert iv["costs"]["total"][i] == pytest.approx(ic["costs"]["total"], abs=1e-6, rel=rel)
    if "imbalance" in ic["costs"]:  # the ahead market
        assert iv["costs"]["imbalance"][i] == pytest.approx(ic["costs"]["imbalance"], abs=1e-9)
        for k in ("shortfall_kwh", "excess_kwh"):
            assert iv[k][i] == pytest.approx(ic["market"][k], abs=1e-9), k
    m = ic["market"]
    assert iv["bought_kwh"][i] == pytest.approx(m["bought_kwh"], abs=1e-9)
    assert iv["sold_kwh"][i] == pytest.approx(m["sold_kwh"], abs=1e-9)
    # The scalar env reports None (older: NaN) when nothing cleared.
    price = np.nan if m["clearing_price"] is None else m["clearing_price"]
    assert iv["clearing_price"][i] == pytest.approx(price, abs=1e-12, nan_ok=True)
    for k in ("grid_import_kwh", "grid_export_kwh", "net_kw", "load_kw"):
        assert iv[k][i] == pytest.approx(ic[k], abs=1e-9), k
    for k in ("v_min_pu", "v_max_pu", "upstream_import_kw", "network_losses_kw",
              "voltage_violation_pu", "line_loading_max_pct", "pcc_loading_pct",
              "feeder_v_min_pu", "feeder_v_max_pu", "pcc_loading_max_pct"):
        assert iv[k][i] == pytest.approx(ic[k], abs=1e-6), k
    assert iv["soc_violation"][i] == ic["soc_violation"]
    for k in set(NETWORK_COST_TERMS) & set(ic["costs"]):
        assert iv["costs"][k][i] == pytest.approx(ic["costs"][k], abs=1e-6, rel=rel), k
    for k in set(NETWORK_DSO_KEYS) & set(ic):
        assert iv[k][i] == pytest.approx(ic[k], abs=1e-6, rel=rel), k
    assert iv["pf_converged"][i] == ic["pf_converged"]
    assert iv["action_clipped"][i] == ic["action_clipped"]
    assert iv["device_limited"][i] == ic["device_limited"]


def _check_obs(labels, scalar_obs, vec_obs) -> None:
    ref = np.stack(scalar_obs)
    assert vec_obs.shape == ref.shape and vec_obs.dtype == np.float32
    pf = np.array([lab in PF_OBS for lab in labels])
    np.testing.assert_allclose(vec_obs[:, ~pf], ref[:, ~pf], rtol=0, atol=1e-9)
    np.testing.assert_allclose(vec_obs[:, pf], ref[:, pf], rtol=0, atol=1e-6)


def test_default_config_matches_scalar():
    stats = run_both({"max_episode_steps": 24})
    assert stats["traded"] > 0  # the market path was exercised


def test_no_market_matches_scalar():
    run_both({"max_episode_steps": 10, "horizontal_protocol": None})


def test_three_microgrids_fee_and_k_match_scalar():
    proto = P2PTradingProtocol(UniformPrice(k=0.3), trading_fee=0.02)
    stats = run_both({"max_episode_steps": 12, "microgrids": three_microgrids(),
                      "horizontal_protocol": proto}, seed=3)
    assert stats["traded"] > 0


def test_trading_fee_key_and_fixed_start_day():
    run_both({"max_episode_steps": 8, "trading_fee": 0.01, "start_day": 200,
              "dt_hours": 0.5}, seed=11, episodes=2.2)


def test_storage_terminal_term_and_train_split_match_scalar():
    stats = run_both({"max_episode_steps": 12, "storage_terminal_price": 0.08,
                      "microgrids": three_microgrids(), "split": "train"}, seed=5)
    assert stats["traded"] > 0


@pytest.mark.parametrize("ahead", [
    {"gate_lead_steps": 1},
    {"gate_lead_steps": 3, "bid_curve_points": 3, "clearing": "pay_as_bid"},
    {"gate_lead_steps": 2, "clearing": "cda", "dt_hours": 0.5},
])
def test_ahead_market_batch_path_matches_scalar(ahead):
    stats = run_both({"max_episode_steps": 10, "market_timing": "ahead",
                      "microgrids": three_microgrids(), **ahead}, seed=2)
    assert stats["traded"] > 0


def test_ahead_market_per_row_path_matches_scalar():
    # a pair fee clears per row through each row's Coordination, as distributed mode does
    fees = PairFees(("MG1", "MG2"), [[0.0, 0.01], [0.003, 0.0]])
    stats = run_both({"max_episode_steps": 10, "market_timing": "ahead", "gate_lead_steps": 2,
                      "horizontal_protocol": P2PTradingProtocol(pair_fee=fees),
                      "centralized": False, "latency_steps": 1, "bid_curve_points": 2}, seed=4)
    assert stats["traded"] > 0


def test_test_split_draws_the_same_start_days_as_scalar():
    vec = VectorMicrogrids(B, {"split": "test"})
    _, infos = vec.reset(seed=9)
    scalar = [MultiAgentMicrogrids({"split": "test"}).reset(seed=9 + i)[1]["MG1"]["start_day"]
              for i in range(B)]
    assert infos["MG1"]["start_day"].tolist() == scalar


def test_bad_actions_raise_naming_agent():
    vec = VectorMicrogrids(3, {"max_episode_steps": 4})
    vec.reset(seed=0)
    good = {a: np.zeros((3, *vec.single_action_space(a).shape)) for a in vec.possible_agents}
    with pytest.raises(ValueError, match="MG1"):
        vec.step({**good, "MG1": np.zeros((3, 7))})
    with pytest.raises(ValueError, match="MG2"):
        bad = good["MG2"].copy()
        bad[1, 0] = np.nan
        vec.step({**good, "MG2": bad})
    with pytest.raises(ValueError, match="MG2"):
        vec.step({"MG1": good["MG1"]})
    with pytest.raises(ValueError, match="ghost"):
        vec.step({**good, "ghost": good["MG1"]})


def n_microgrids(n: int) -> list:
    base = default_microgrids()
    return [replace(base[k % 2], name=f"MG{k + 1}") for k in range(n)]


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("clearing", ["uniform", "pay_as_bid", "cda", "mcafee"])
def test_every_clearing_rule_matches_scalar(clearing, n):
    stats = run_both({"max_episode_steps": 6, "microgrids": n_microgrids(n),
                      "clearing": clearing, "trading_fee": 0.005}, seed=11)
    # McAfee with one buyer and one seller always reduces away the only trade
    assert stats["traded"] > 0 or (clearing == "mcafee" and n == 2)


class Heater(PowerDevice):
    """A custom device (plain Python): consumes up to 50 kW, costs 0.01 $/kWh, draws noise."""

    action_labels, obs_labels = ("heat",), ("heat_frac",)

    def __init__(self, params: HeaterParams) -> None:
        super().__init__(params.name, params.bus)
        self.params = params

    def reset(self, rng) -> None:
        self.p_kw, self.cost, self.clipped = 0.0, 0.0, False
        self.bias = float(rng.uniform(0.0, 5.0))  # from the env's RNG, as a device may

    def step(self, action, ctx) -> float:
        want = (float(action[0]) + 1.0) * 25.0 + self.bias
        power = min(want, 50.0)
        self.clipped, self.p_kw = power != want, -power
        self.cost = 0.01 * power * ctx.dt_hours * (1.0 + ctx.pv_per_kw)
        return self.p_kw

    def observe(self) -> tuple[float, ...]:
        return (-self.p_kw / 50.0,)


@dataclass(frozen=True)
class HeaterParams(DeviceParams):
    name: str = "heater"
    bus: str = "675"

    def build(self) -> Heater:
        return Heater(self)


def heater_microgrids():
    mg1, mg2 = default_microgrids()
    return [mg1, replace(mg2, devices=(*mg2.devices, HeaterParams()))]


FEATURES = {
    "setpoint": {"vertical_protocol": SetpointProtocol(), "setpoint_target_kw": 300.0},
    "price_signal_rule": {"vertical_protocol": tariff_price_signal(
        [0.12] * 8 + [0.25] * 12 + [0.12] * 4, mode="rule")},
    "price_signal_agent": {"vertical_protocol": PriceSignalProtocol(mode="agent")},
    "consensus": {"horizontal_protocol": ConsensusProtocol()},
    "distributed": {"centralized": False, "latency_steps": 1, "drop_prob": 0.2},
    "distributed_lossless": {"centralized": False},
    "ieee34": {"network": "ieee34", "microgrids": three_microgrids()},
    "custom_device": {"microgrids": heater_microgrids()},
    "reactive_tied": {"reactive_power": True},
    "reactive_ieee34": {"network": "ieee34", "microgrids": three_microgrids(),
                        "reactive_power": True},
    "reactive_custom_device": {"microgrids": heater_microgrids(), "reactive_power": True},
    "pair_fees": {"microgrids": three_microgrids(), "horizontal_protocol": P2PTradingProtocol(
        pair_fee=PairFees(("MG1", "MG2", "MG3"), [[0, 0.01, 0.02], [0.01, 0, 0.005],
                                                  [0.02, 0.005, 0]]))},
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_feature_matches_scalar(name):
    run_both({"max_episode_steps": 5, **FEATURES[name]}, seed=13)


@pytest.mark.parametrize("seed", [0, 5, 11])
def test_network_costs_and_fees_match_scalar_on_the_shared_feeder(seed):
    config = get("p2p-3mg-v2").config(max_episode_steps=6, network_fee_per_kwh_per_ohm=5e-4)
    vec = VectorMicrogrids(1, config)
    vec.reset(seed=0)
    *_, infos = vec.step({a: np.zeros((1, *vec.single_action_space(a).shape))
                          for a in vec.possible_agents})
    assert set(NETWORK_COST_TERMS) <= set(infos["MG1"]["costs"])
    assert set(NETWORK_DSO_KEYS) <= set(infos["MG1"])
    # Losses are allocated in proportion m_u / sum_u m_u: where the marginal charges nearly
    # cancel, the solvers' tolerance (1e-6 on voltages) is amplified, so relative 1e-6.
    run_both(config, seed=seed, rel=1e-6)


@pytest.mark.slow
def test_pandapower_solver_matches_scalar():
    run_both({"max_episode_steps": 3, "power_flow": "pandapower"}, seed=2, episodes=2.2)


def test_reset_mask_restarts_only_those_envs():
    run_both({"max_episode_steps": 6}, seed=4, episodes=3.2,
             mask_reset=(3, np.array([False, True, False, True])))


@pytest.mark.parametrize("mask", [[True, False], np.ones(3, bool), np.array([1, 0, 1, 0]),
                                  np.zeros(4, bool)])
def test_bad_reset_mask_raises(mask):
    vec = VectorMicrogrids(B, {"max_episode_steps": 3})
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": mask})


def test_reset_mask_is_for_the_batch_only():
    vec = VectorMicrogrids(2, {"max_episode_steps": 3})
    with pytest.raises(ValueError, match="first reset"):
        vec.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(ValueError, match="VectorMicrogrids"):
        MultiAgentMicrogrids({"max_episode_steps": 3}).reset(
            options={"reset_mask": np.array([True])})


def test_render_mode_is_the_one_unsupported_option():
    with pytest.raises(ValueError, match="render_mode"):
        VectorMicrogrids(2, {"render_mode": "ansi"})


def test_seed_list_and_bad_num_envs():
    vec = VectorMicrogrids(2, {"max_episode_steps": 3})
    a, _ = vec.reset(seed=[5, 6])
    b, _ = vec.reset(seed=5)
    for ag in vec.possible_agents:
        np.testing.assert_array_equal(a[ag], b[ag])
    with pytest.raises(ValueError, match="num_envs"):
        VectorMicrogrids(0)


def test_gymnasium_vector_conventions_autoreset_mode_and_batched_spaces():
    from gymnasium.vector import AutoresetMode

    vec = VectorMicrogrids(3, {"max_episode_steps": 2})
    assert vec.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, _ = vec.reset(seed=0)
    for a in vec.possible_agents:
        assert vec.single_observation_spaces[a] == vec.single_observation_space(a)
        assert vec.observation_spaces[a].shape == (3, *vec.single_observation_spaces[a].shape)
        assert vec.observation_spaces[a].contains(obs[a])
        assert vec.action_spaces[a].shape == (3, *vec.single_action_spaces[a].shape)


def test_observations_are_new_contiguous_float32_arrays_inside_their_spaces():
    vec = VectorMicrogrids(3, {"max_episode_steps": 6})
    first, _ = vec.reset(seed=1)
    kept = {a: o.copy() for a, o in first.items()}
    acts = {a: np.full((3, *vec.single_action_space(a).shape), 0.5) for a in vec.possible_agents}
    second = vec.step(acts)[0]
    for a in vec.possible_agents:
        np.testing.assert_array_equal(first[a], kept[a])  # a later step never overwrites
        assert not np.shares_memory(first[a], second[a])
        o, space = second[a], vec.single_observation_space(a)
        assert o.dtype == np.float32 and o.flags.c_contiguous and o.shape == (3, *space.shape)
        assert all(space.contains(row) for row in o)


def test_out_of_range_actions_are_clipped_and_flagged_per_env():
    vec = VectorMicrogrids(3, {"max_episode_steps": 6})
    vec.reset(seed=2)
    acts = {a: np.zeros((3, *vec.single_action_space(a).shape)) for a in vec.possible_agents}
    acts["MG2"][1, 0] = 1.5
    infos = vec.step(acts)[4]
    assert infos["MG2"]["action_clipped"].tolist() == [False, True, False]
    assert not infos["MG1"]["action_clipped"].any()
    assert acts["MG2"][1, 0] == 1.5  # the caller's array is not modified


@pytest.mark.parametrize("config", [{}, {"market_timing": "ahead"},
                                    {"vertical_protocol": SetpointProtocol(0.05),
                                     "setpoint_target_kw": 300.0}])
def test_compiled_infos_equal_the_generic_rendering_in_keys_order_and_values(config):
    vec = VectorMicrogrids(3, {**config, "max_episode_steps": 6})
    vec.reset(seed=4)
    acts = {a: np.full((3, *vec.single_action_space(a).shape), 0.3) for a in vec.possible_agents}
    acts["MG1"][2, 0] = 2.0
    out_seen = {}
    step = vec.sim.step
    vec.sim.step = lambda *a: out_seen.setdefault("out", step(*a))
    infos = vec.step(acts)[4]
    out = out_seen["out"]
    rows = {k: np.ascontiguousarray(v.T) for k, v in out.per_agent.items()}
    rows["action_clipped"] = np.array([[False, False, True], [False, False, False]])
    for i, a in enumerate(vec.microgrid_agents):
        generic = vec._infos.render_row(rows, out.shared, i, None)
        got = {k: v for k, v in infos[a].items() if k not in ("autoreset", "start_day")}
        assert list(got) == list(generic) and list(got["costs"]) == list(generic["costs"])
        for k, v in generic.items():
            if k == "costs":
                for c, x in v.items():
                    np.testing.assert_array_equal(got["costs"][c], x)
            else:
                np.testing.assert_array_equal(got[k], v)
