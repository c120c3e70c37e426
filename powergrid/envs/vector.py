"""VectorMicrogrids: B copies of MultiAgentMicrogrids stepped together, vectorised in numpy."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from heron.protocols.horizontal import P2PTradingProtocol
from heron.validation import Range
from powergrid.core.infos import flat, flat_fields, microgrid_schema
from powergrid.core.layout import common_features, cost_total
from powergrid.core.storage import storage_terminal, stored_kwh
from powergrid.envs._vector_devices import (
    VecDevice,
    VecESS,
    VecGenerator,
    make_vector_device,
    supports,
)
from powergrid.envs._vector_pf import BatchPowerFlow
from powergrid.envs.actions import action_array
from powergrid.envs.config import EnvConfig
from powergrid.envs.multi_agent_microgrids import EPS_KWH, MultiAgentMicrogrids
from powergrid.envs.options import check_seeds, reset_options
from powergrid.envs.safety import V_CEIL_PU, V_FLOOR_PU, FailureRule
from powergrid.envs.series import episode_series_batch, limit_price, price_band
from powergrid.pf import FastSolver

SUPPORTED = ("centralized=True, no vertical_protocol, horizontal_protocol None or "
             "P2PTradingProtocol with any clearing rule and trading_fee, Generator/"
             "ESS/Solar devices, power_flow='fast', latency_steps=0, drop_prob=0, no render_mode")
MAX_SERIES_BYTES = 4 * 2**30
# The scalar env computes sin/cos of the hour with math; tabulating the same expression keeps
# the float32 observations bit-identical.
_HOUR_SIN = np.array([math.sin(2 * math.pi * h / 24) for h in range(24)])
_HOUR_COS = np.array([math.cos(2 * math.pi * h / 24) for h in range(24)])
# the flat rows of the info schema (powergrid.core.infos) the batch reports
_INFO_FIELDS = flat_fields(microgrid_schema(()))


class VectorMicrogrids:
    """``num_envs`` independent MultiAgentMicrogrids envs as one batched, parallel env.

    Why: RL needs many env-steps per second; stepping B scalar envs costs B Python passes
    through devices, market and power flow, while here each stage is one numpy (or numba)
    pass over the batch. Env ``i`` behaves exactly like ``MultiAgentMicrogrids(config)``
    reset with ``seed + i`` and fed the same actions (tested to 1e-9; 1e-6 for power-flow
    derived values).

    API (PettingZoo-parallel-like, every value batched along axis 0):

    * ``possible_agents`` / ``agents``; ``single_observation_space(agent)`` and
      ``single_action_space(agent)`` are the scalar env's Boxes; ``obs_labels``. As
      Gymnasium vector envs, per agent: ``single_observation_spaces`` /
      ``single_action_spaces`` (those Boxes) and ``observation_spaces`` /
      ``action_spaces`` (batched, leading axis B).
    * ``reset(seed=None, options=None) -> (obs, infos)``: ``obs[agent]`` is a float32
      ``(B, obs_dim)`` array; ``seed`` an int (env i gets ``seed + i``) or B ints;
      ``options={"start_day": int | (B,) ints}`` as in the scalar env.
    * ``step(actions) -> (obs, rewards, terminateds, truncateds, infos)`` with
      ``actions[agent]`` of shape ``(B, act_dim)``; rewards ``(B,)`` float, terminateds /
      truncateds ``(B,)`` bool; ``infos[agent]`` a dict of ``(B,)`` arrays: ``costs``
      (every term and ``total``), ``grid_import_kwh``, ``grid_export_kwh``,
      ``bought_kwh``, ``sold_kwh``, ``net_kw``, ``load_kw``, ``clearing_price`` (NaN when
      nothing cleared), ``pf_converged``, ``v_min_pu``, ``v_max_pu``,
      ``action_clipped``, ``device_limited``, ``upstream_import_kw``,
      ``network_losses_kw``, ``autoreset``. Bad shapes, NaN/inf, missing or unknown
      agents raise ``ValueError`` naming the agent.

    Autoreset (Gymnasium ``AutoresetMode.NEXT_STEP``, the default of gymnasium vector
    envs): the step on which an episode truncates returns that episode's final obs and
    ``truncateds = True``. The next ``step`` ignores the actions of those envs, resets them
    and returns their first obs with reward 0, terminated/truncated False and
    ``infos[agent]["autoreset"] = True`` (cost/market infos are 0 there). Episodes have a
    fixed length, so all envs run in lockstep and truncate on the same step.

    A failed power flow follows the scalar env's rule (``powergrid.envs.safety``) per
    row: same penalty, collapse-state ``v_min_pu``/``v_max_pu``, losses and upstream
    import, never the solver's iterate.

    Scope: ``SUPPORTED``; anything else raises ``ValueError`` (use the scalar env, e.g.
    one per worker, for those).
    """

    metadata = {"name": "vector_multi_agent_microgrids_v0",
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, config: Mapping[str, Any] | EnvConfig | None = None):
        if Range(1, integer=True).coerce(num_envs) is None:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        num_envs = int(num_envs)  # numpy integers too
        cfg = EnvConfig.from_dict(config)
        _check_config(cfg)
        # Episode series hold ~(3 N + 6) float64 per env and step: refuse what cannot fit.
        series_bytes = num_envs * (cfg.max_episode_steps + 1) * (3 * len(cfg.microgrids) + 6) * 8
        if series_bytes > MAX_SERIES_BYTES:
            raise ValueError(f"num_envs={num_envs} x max_episode_steps={cfg.max_episode_steps} "
                             f"needs {series_bytes / 2**30:.1f} GiB of episode series (limit "
                             f"{MAX_SERIES_BYTES / 2**30:.0f} GiB): use fewer envs or shorter "
                             "episodes")
        # The scalar env is the single source of spaces, network, protocol and tariffs.
        tpl = MultiAgentMicrogrids(cfg)
        _check_built(tpl)
        self.num_envs = B = num_envs
        self.config = cfg
        self.profiles = tpl.profiles
        self.possible_agents = list(tpl.possible_agents)
        self.agents = list(self.possible_agents)
        self.obs_labels = dict(tpl.obs_labels)
        self.action_labels = dict(tpl.action_labels)
        self._obs_spaces, self._act_spaces = tpl.observation_spaces, tpl.action_spaces
        # Gymnasium vector conventions, per agent: the scalar env's spaces and batched ones
        self.single_observation_spaces = dict(self._obs_spaces)
        self.single_action_spaces = dict(self._act_spaces)
        self.observation_spaces = {a: batch_space(sp, num_envs)
                                   for a, sp in self._obs_spaces.items()}
        self.action_spaces = {a: batch_space(sp, num_envs) for a, sp in self._act_spaces.items()}
        self._retail_price, self._feed_in_price = tpl.retail_price, tpl.feed_in_price
        proto = tpl.protocol
        # any ClearingRule: the built-in four clear every book in one compiled pass
        self._rule = None if proto is None else proto.clearing_rule
        self._fee = 0.0 if proto is None else float(proto.trading_fee)

        net = tpl.network
        self._devices: list[list[VecDevice]] = [
            [make_vector_device(d.params, B) for d in tpl.devices(a)] for a in self.possible_agents]
        self._n_load, self._n_sgen = len(net.net.load), len(net.net.sgen)
        self._n_storage = len(net.net.storage)
        self._load_rows = [net.load_rows[a] for a in self.possible_agents]
        self._load_share, self._load_q_ratio = net.load_share, net.load_q_ratio
        self._dev_rows = [[net.device_rows[(a, d.name)] for d in devs]
                          for a, devs in zip(self.possible_agents, self._devices)]
        self._bus_rows = [net.bus_rows[a] for a in self.possible_agents]
        self._line_rows = [net.line_rows[a] for a in self.possible_agents]
        self._peak = np.array([m.peak_load_kw for m in cfg.microgrids])
        self._pf = BatchPowerFlow(tpl.solver, B)
        self._failure = FailureRule.build(cfg, net, self.possible_agents)
        self._rngs = [np.random.default_rng() for _ in range(B)]
        self._days_split = tpl._days_split
        self._split = cfg.split
        self._terminal_price = cfg.storage_terminal_price
        self._ess = [[d for d in devs if isinstance(d, VecESS)] for devs in self._devices]
        self._t: int | None = None
        self._needs_reset = False

    # ------------------------------------------------------------------ API
    def single_observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def single_action_space(self, agent: str) -> spaces.Box:
        return self._act_spaces[agent]

    def reset(self, seed: int | Sequence[int] | None = None, options: dict | None = None):
        B = self.num_envs
        # Validate everything first: a rejected reset must leave the envs untouched.
        seeds = check_seeds(seed, B)
        opts = reset_options(options, B)
        splits = opts.get("split", [self.config.split] * B)
        if len(set(splits)) > 1:
            raise ValueError(f"reset option 'split' must be the same for every env, got {splits}")
        days = opts.get("start_day", [self.config.start_day] * B)
        if None in days and any(d is not None for d in days):
            raise ValueError("reset option 'start_day' must give a day for every env or for "
                             "none")
        start = (None if None in days
                 else self._days_split.check_many(days, splits[0], "reset option 'start_day'"))
        if seeds is not None:
            self._rngs = [np.random.default_rng(s) for s in seeds]
            for i, a in enumerate(self.possible_agents):
                self._act_spaces[a].seed(seeds[0] + i)
                self._obs_spaces[a].seed(seeds[0] + i)
        self._split = splits[0]
        self._reset_all(start)
        infos = {a: {"start_day": self._start_day.copy()} for a in self.possible_agents}
        return self._observations(), infos

    def step(self, actions: Mapping[str, Any]):
        if self._t is None:
            raise RuntimeError("step() called before reset()")
        acts, clipped = self._validate_actions(actions)
        if self._needs_reset:
            self._reset_all(None if self.config.start_day is None
                            else np.full(self.num_envs, self.config.start_day))
            return self._autoreset_step()
        B, N, t, cfg = self.num_envs, len(self.possible_agents), self._t, self.config
        dt = cfg.dt_hours
        pv, retail, feed_in = self._pv[:, t], self._retail[:, t], self._feed_in[:, t]
        load_kw = self._load_kw[:, t]

        net_kw = np.empty((B, N))
        dev_cost = np.zeros((2, B, N))  # generation, degradation
        limited = np.zeros((B, N), bool)
        sgen_p, storage_p = np.zeros((B, self._n_sgen)), np.zeros((B, self._n_storage))
        for i, (act, devs, rows) in enumerate(zip(acts, self._devices, self._dev_rows)):
            out, k = 0.0, 0
            for d, (element, row) in zip(devs, rows):
                p = d.step(act[:, k], dt, pv)
                k += 1
                out = out + p
                dev_cost[0 if isinstance(d, VecGenerator) else 1, :, i] += d.cost
                limited[:, i] |= d.clipped
                if element == "storage":
                    storage_p[:, row] = -p / 1e3
                else:
                    sgen_p[:, row] = p / 1e3
            net_kw[:, i] = out - load_kw[:, i]

        if self._rule is None:
            bought = sold = pay = rev = fees = np.zeros((B, N))
            price = np.full(B, np.nan)
        else:
            qty = np.abs(net_kw) * dt
            low, high = price_band(feed_in[:, None], retail[:, None], self._fee)
            order = (qty > EPS_KWH) & (low <= high)  # an empty band: the fee eats every gain
            limit = limit_price(np.stack([a[:, -1] for a in acts], 1), low, high)
            # slot i = agent i's order, arriving in agent order as in the scalar env
            side = np.where(order, np.where(net_kw > 0, -1, 1), 0)
            m = self._rule.clear_batch(side, qty, limit, self._fee)
            bought, sold, price, pay, rev, fees = (m.bought, m.sold, m.price, m.paid,
                                                   m.received, m.fees)
        traded = ~np.isnan(price)
        p_or_0 = np.where(traded, price, 0.0)[:, None]
        residual = net_kw * dt - sold + bought
        grid_export = np.maximum(residual, 0.0)
        grid_import = np.maximum(-residual, 0.0)

        load_p = np.empty((B, self._n_load))
        for i, rows in enumerate(self._load_rows):
            load_p[:, rows] = load_kw[:, i, None] * self._load_share[rows] / 1e3
        pf = self._pf.solve(load_p, load_p * self._load_q_ratio, sgen_p, storage_p)
        penalty, converged, upstream_kw, losses_kw = self._safety(pf, net_kw, load_kw)

        zero = np.zeros((B, N))
        costs = {
            "generation": dev_cost[0], "degradation": dev_cost[1], "other_devices": zero,
            "grid_import": grid_import * retail[:, None],
            "grid_export_revenue": grid_export * feed_in[:, None],
            "p2p_payment": pay, "p2p_revenue": rev, "fees": fees, "safety_penalty": penalty,
            "tracking_penalty": zero,
            "storage_terminal": self._storage_terminal(t + 1 >= cfg.max_episode_steps),
        }
        total = cost_total(costs)
        self._last_price = p_or_0[:, 0]
        self._last_p2p = sold - bought
        self._last_grid = grid_export - grid_import
        self._t += 1
        done = self._t >= cfg.max_episode_steps
        self._needs_reset = done
        per_agent = {"grid_import_kwh": grid_import, "grid_export_kwh": grid_export,
                     "bought_kwh": bought, "sold_kwh": sold, "net_kw": net_kw,
                     "load_kw": load_kw, "v_min_pu": self._v_min, "v_max_pu": self._v_max,
                     "action_clipped": clipped, "device_limited": limited,
                     **{f"costs/{k}": v for k, v in costs.items()}, "costs/total": total}
        shared = {"clearing_price": price, "pf_converged": converged,
                  "upstream_import_kw": upstream_kw, "network_losses_kw": losses_kw}
        infos = {a: {**flat(_INFO_FIELDS, {**{k: v[:, i].copy() for k, v in per_agent.items()},
                                           **shared}), "autoreset": np.zeros(B, bool)}
                 for i, a in enumerate(self.possible_agents)}
        rewards = {a: -total[:, i] for i, a in enumerate(self.possible_agents)}
        if self.config.share_reward:  # as the scalar env: every microgrid gets the sum
            joint = -total.sum(axis=1)
            rewards = {a: joint.copy() for a in self.possible_agents}
        trunc = np.full(B, done)
        return (self._observations(), rewards,
                {a: np.zeros(B, bool) for a in self.possible_agents},
                {a: trunc.copy() for a in self.possible_agents}, infos)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ internals
    def _reset_all(self, start_days: np.ndarray | None) -> None:
        """Start a new episode in every env, drawing from each env's RNG as the scalar env."""
        cfg, B, N = self.config, self.num_envs, len(self.possible_agents)
        shape = (cfg.max_episode_steps + 1, N)
        days, noise = np.empty(B, int), np.empty((B, *shape))
        for i, rng in enumerate(self._rngs):
            # Same draw order as MultiAgentMicrogrids.reset: start day, then the load noise.
            days[i] = (self._days_split.draw(rng, self._split) if start_days is None
                       else start_days[i])
            noise[i] = rng.standard_normal(shape)
        s = episode_series_batch(cfg, self.profiles, self._retail_price, self._feed_in_price,
                                 cfg.microgrids, days, noise)
        self._start_day = days
        self._hours, self._pv, self._retail, self._feed_in = s.hours, s.pv_per_kw, s.retail, s.feed_in
        self._load_forecast, self._load_kw = s.load_forecast_kw, s.load_kw
        everyone = np.ones(B, bool)
        for devs in self._devices:
            for d in devs:
                d.reset(everyone)
        self._pf.reset(everyone)
        self._stored_kwh_start = self._stored_kwh()
        self._t, self._needs_reset = 0, False
        self._last_price = np.zeros(B)
        self._last_p2p, self._last_grid = np.zeros((B, N)), np.zeros((B, N))
        self._v_min, self._v_max = np.ones((B, N)), np.ones((B, N))
        self._last_losses_kw = np.zeros(B)  # of the last converged solve, per env

    def _stored_kwh(self) -> np.ndarray:
        """(B, N) energy held in each microgrid's ESS devices, kWh, summed as the scalar env."""
        return _columns(stored_kwh(self._ess), self.num_envs)

    def _storage_terminal(self, last_step: bool) -> np.ndarray:
        if not last_step or self._terminal_price == 0.0:
            return np.zeros((self.num_envs, len(self.possible_agents)))
        return _columns(storage_terminal(self._terminal_price, self._stored_kwh_start.T,
                                         self._stored_kwh().T), self.num_envs)

    def _autoreset_step(self):
        B = self.num_envs
        f, idle = np.zeros(B, bool), np.ones(B, bool)
        values = {fl.flat: np.zeros(B, fl.dtype) for fl in _INFO_FIELDS}
        info = {**flat(_INFO_FIELDS, values, idle), "autoreset": idle,
                "start_day": self._start_day.copy()}
        agents = self.possible_agents
        return (self._observations(), {a: np.zeros(B) for a in agents},
                {a: f.copy() for a in agents}, {a: f.copy() for a in agents},
                {a: info for a in agents})

    def _validate_actions(self, actions: Mapping[str, Any]) -> tuple[list[np.ndarray], np.ndarray]:
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict {{agent: (B, act_dim) array}}, got "
                             f"{type(actions).__name__}")
        unknown = [a for a in actions if a not in self.possible_agents]
        missing = [a for a in self.possible_agents if a not in actions]
        if unknown or missing:
            raise ValueError(f"actions must have exactly the agents {self.possible_agents}; "
                             f"unknown {unknown}, missing {missing}")
        out, clipped = [], np.zeros((self.num_envs, len(self.possible_agents)), bool)
        for i, a in enumerate(self.possible_agents):
            arr = action_array(a, actions[a], (self.num_envs, *self._act_spaces[a].shape))
            if not np.isfinite(arr).all():
                bad = np.flatnonzero(~np.isfinite(arr).all(1)).tolist()
                raise ValueError(f"action for {a!r} contains NaN or inf (envs {bad[:10]})")
            c = np.clip(arr, -1.0, 1.0)
            clipped[:, i] = (c != arr).any(1)
            out.append(c)
        return out, clipped

    def _safety(self, pf, net_kw: np.ndarray, load_kw: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-agent penalty (B, N), converged (B,), upstream import and losses (B,) in kW.

        Updates v_min/v_max; failed or inadmissible rows follow ``powergrid.envs.safety``.
        """
        cfg = self.config
        lo, hi = cfg.voltage_band
        penalty = np.empty((self.num_envs, len(self.possible_agents)))
        l_max = np.empty_like(penalty)
        for i, (buses, lines) in enumerate(zip(self._bus_rows, self._line_rows)):
            vm = pf.vm_pu[:, buses]
            v_violation = np.sum(np.maximum(vm - hi, 0.0) + np.maximum(lo - vm, 0.0), axis=1)
            overload = np.sum(np.maximum(pf.line_loading[:, lines] - 100.0, 0.0), axis=1)
            penalty[:, i] = (cfg.voltage_penalty_per_pu * v_violation
                             + cfg.line_overload_penalty_per_pct * overload)
            self._v_min[:, i], self._v_max[:, i] = vm.min(1), vm.max(1)
            l_max[:, i] = pf.line_loading[:, lines].max(1)
        rule = self._failure
        ok = pf.converged & rule.admissible(self._v_min.min(1), self._v_max.max(1), l_max.max(1))
        losses_kw = np.where(ok, pf.losses_mw * 1e3, rule.losses_kw(self._last_losses_kw))
        upstream_kw = np.where(ok, pf.p_slack_mw * 1e3,
                               rule.upstream_import_kw(net_kw, losses_kw))
        self._last_losses_kw = losses_kw
        bad = ~ok
        if bad.any():  # the collapse state, never the solver's iterate
            penalty[bad] = rule.penalty(net_kw[bad], load_kw[bad])
            self._v_min[bad], self._v_max[bad] = V_FLOOR_PU, V_CEIL_PU
        return penalty, ok, upstream_kw, losses_kw

    def _observations(self) -> dict[str, np.ndarray]:
        t = min(self._t, self.config.max_episode_steps - 1)
        hours = self._hours[:, t]
        common = {"pv_now": self._pv[:, t], "pv_next": self._pv[:, t + 1],
                  "hour_sin": _HOUR_SIN[hours], "hour_cos": _HOUR_COS[hours],
                  "retail_price": self._retail[:, t], "feed_in_price": self._feed_in[:, t],
                  "last_clearing_price": self._last_price}
        obs = {}
        for i, a in enumerate(self.possible_agents):
            peak = self._peak[i]
            feats = [*common_features({
                **common, "load_now": self._load_forecast[:, t, i] / peak,
                "load_next": self._load_forecast[:, t + 1, i] / peak,
                "last_p2p_kwh": self._last_p2p[:, i] / peak,
                "last_grid_kwh": self._last_grid[:, i] / peak,
                "v_min_pu": self._v_min[:, i], "v_max_pu": self._v_max[:, i]}),
                *(d.observe() for d in self._devices[i])]
            space = self._obs_spaces[a]
            x = np.nan_to_num(np.stack(feats, axis=1).astype(np.float32))
            obs[a] = np.clip(x, space.low, space.high)
        return obs


def _columns(per_agent: list, num_envs: int) -> np.ndarray:
    """(B, N) from one (B,) array (or a 0 for a microgrid without storage) per agent."""
    return np.stack([np.broadcast_to(np.asarray(v, float), (num_envs,)) for v in per_agent], 1)


def _check_config(cfg: EnvConfig) -> None:
    """Reject what the vectorised code does not model, before building anything."""
    problems = []
    if not cfg.centralized:
        problems.append("centralized=False")
    if cfg.vertical_protocol is not None:
        problems.append(f"vertical_protocol={type(cfg.vertical_protocol).__name__}")
    if cfg.power_flow != "fast":
        problems.append(f"power_flow={cfg.power_flow!r}")
    if cfg.network != "tied":  # the shared feeder's background loads: after the one-core move
        problems.append(f"network={cfg.network!r}")
    if cfg.latency_steps or cfg.drop_prob:
        problems.append("latency_steps/drop_prob != 0")
    if cfg.network_costs or cfg.network_fee_per_kwh_per_ohm:  # after the one-core move
        problems.append("network_costs / network_fee_per_kwh_per_ohm")
    if cfg.render_mode is not None:
        problems.append(f"render_mode={cfg.render_mode!r}")
    if problems:
        _unsupported(", ".join(problems))


def _check_built(env: MultiAgentMicrogrids) -> None:
    proto = env.protocol
    if proto is not None and type(proto) is not P2PTradingProtocol:
        _unsupported(f"horizontal protocol {type(proto).__name__}")
    for a in env.possible_agents:
        for d in env.devices(a):
            if not supports(getattr(d, "params", None), d):
                _unsupported(f"device {d.name!r} of {a!r} of type {type(d).__name__}")
    if not isinstance(env.solver, FastSolver):
        _unsupported(f"solver {type(env.solver).__name__}")


def _unsupported(what: str) -> None:
    raise ValueError(f"VectorMicrogrids does not support {what}. It supports: {SUPPORTED}. "
                     "Use MultiAgentMicrogrids (e.g. one per worker, or wrapped in a "
                     "vector wrapper) for other configurations.")
