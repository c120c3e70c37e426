"""MultiAgentMicrogrids: IEEE-13 microgrids that trade energy peer-to-peer on AC power flow."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from heron.agents import Agent
from heron.market import Order
from heron.protocols.base import HorizontalProtocol
from powergrid.core import ahead as ahead_market
from powergrid.core.infos import device_info_keys, microgrid_schema, nested, operator_schema
from powergrid.core.layout import COMMON_OBS, DEVICE_COSTS, common_features, cost_total
from powergrid.core.layout import COST_SIGNS as COST_SIGNS  # re-exported: public name
from powergrid.core.market import EPS_KWH as EPS_KWH  # re-exported: public name
from powergrid.core.market import money, row_orders
from powergrid.core.storage import storage_terminal, stored_kwh
from powergrid.data import load_profiles
from powergrid.data.user import user_profiles
from powergrid.devices import ESS, PowerDevice, StepContext
from powergrid.devices.inverter import build_devices, reactive_setpoints
from powergrid.envs.actions import action_array
from powergrid.envs.config import EnvConfig
from powergrid.envs.coordination import DSO, DSO_OBS, Coordination
from powergrid.envs.days import DaySplit, episode_days
from powergrid.envs.options import check_seed, reset_options
from powergrid.envs.safety import LOADING_CEIL_PCT, V_CEIL_PU, V_FLOOR_PU, FailureRule
from powergrid.envs.series import episode_series
from powergrid.envs.spaces import (
    EXCHANGE_BOUND,
    Feature,
    box,
    clip_observation,
    price_cap,
    resolve,
    unify_same_shape,
)
from powergrid.limits import PRICE_PER_KWH
from powergrid.network_costs import EnvNetworkCosts, NetworkCostSettings
from powergrid.networks import FeederDevice, make_network
from powergrid.pf import NetworkModel, PFResult, make_solver


def _cost_bucket(device: PowerDevice) -> int:
    """Cost column of a device (its ``cost_term``): generation, degradation, other."""
    return DEVICE_COSTS.index(device.cost_term)


class MultiAgentMicrogrids(ParallelEnv):
    """N microgrids (default MG1, MG2) on tied IEEE-13 feeders trading energy in a market.

    ## Description
    Each agent operates one microgrid: an IEEE-13 feeder (pandapower, balanced
    positive-sequence) whose loads follow a real BDEW load profile and whose devices are
    set by the agent. Every step (one hour by default): devices dispatch; each microgrid's
    net position (generation + discharge - load - charge) becomes a sell order (surplus)
    or a buy order (deficit); the horizontal protocol clears the book; the residual is
    settled with the upstream grid (buy at retail, sell at feed-in); the AC power flow of
    the tied network is solved; rewards are minus costs in $. For any ``dt_hours`` the
    hourly profiles and tariffs enter as their exact mean over the step (energy = integral),
    and ``hour``/``day`` label the hour in which the step starts (exact for e.g. dt = 0.7).

    ## Action space
    ``Box(-1, 1, (n_devices + 1,), float32)`` per agent: one component per device action,
    in device order, then the market price. Default MG1 = [generator p, ESS p, price];
    MG2 = [ESS p, PV curtailment, price].

    | component       | -1                           | +1                      |
    |-----------------|------------------------------|-------------------------|
    | generator p     | off (target 0 kW)            | p_max_kw (ramp-limited) |
    | ESS p           | charge at p_max_kw           | discharge at p_max_kw   |
    | PV curtailment  | none (also for all a <= 0)   | curtail everything      |
    | ESS/PV q        | absorb sqrt(s_kva^2 - P^2)   | inject that (kvar)      |
    | price           | limit = feed-in + fee/2      | limit = retail - fee/2  |

    (``q`` only with ``reactive_power=True``: one per PV/ESS inverter, right after its
    active-power component; see ``powergrid.devices.inverter``.)

    (No order is posted in an hour whose tariff spread is below the trading fee.)

    With ``market_timing="ahead"`` the market components are ``quantity`` (-1 buy, +1
    sell ``max_commit_kwh`` = dt x (1.2 x peak load + device ratings), 0 no order) then
    ``price`` (or ``price_1..k``, a bid curve) within the band of the delivery step ``t + gate_lead_steps``: orders are placed ahead,
    committed at the gate and deviations charged as ``costs["imbalance"]``; six
    observation features (``load_ahead``, ``pv_ahead``, ``retail_ahead``,
    ``feed_in_ahead``, ``committed_now``, ``load_last``) follow the common ones. See
    ``powergrid.core.ahead`` and docs/environment.md.

    Out-of-range finite values are clipped (``infos[a]["action_clipped"]``); NaN/inf,
    a wrong shape, a missing or unknown agent, or a non-real dtype (complex, str, dates,
    bool) raise ``ValueError``.

    ## Observation space
    ``Box(float32)`` per agent: the 13 ``COMMON_OBS`` features (load and PV forecasts,
    hour sin/cos, tariffs, last clearing price, own last P2P and grid exchange, own feeder
    voltage min/max) then one feature per device (ESS ``soc``, generator ``gen_p`` / p_max,
    PV ``pv_available`` per kW), then coordination features when configured
    (``signal_price`` for a price signal, ``grid_setpoint`` for set-points).
    ``env.obs_labels[agent]`` names every component. Every bound is finite
    (``powergrid.envs.spaces``); values outside are clipped and flagged in
    ``infos[a]["obs_clipped"]``. Microgrids with equally long observations share one space
    (the widest bounds), so shared policies and vectorisers accept them; for different
    device sets see ``powergrid.wrappers.SharedSpaces``. ``state()`` concatenates all agents'
    observations with the upstream exchange and losses (for centralized critics).
    With ``PriceSignalProtocol(mode="agent")`` an operator agent ``"DSO"`` is appended to
    ``possible_agents`` (action: next hour's price; reward: peak shaving).

    ## Rewards
    ``-(generation + degradation + other devices + grid import - grid export revenue
    + P2P payments - P2P revenue + fees + safety penalty + tracking penalty
    + storage terminal)`` in $ per step (``COST_SIGNS``); the storage terminal term is
    charged on the last step only: ``storage_terminal_price`` x the energy the agent's
    batteries lost over the episode (a credit if they gained); ``infos[a]["costs"]`` has
    each term and the total. With ``share_reward`` every microgrid gets the sum of the
    microgrids' rewards. The safety penalty charges voltages outside ``voltage_band``
    on the agent's own feeder, line loading above 100 % and a non-converged power flow.
    With ``network_costs=True`` (on in the shared-feeder scenarios) two more terms:
    ``network_losses`` (the network's losses allocated by marginal loss factors, priced at
    the step's retail price or ``loss_price``; negative when the agent's injection reduces
    them) and ``network_violation`` (feeder-bus voltages outside the band and feeder/PCC
    overloads, charged to the microgrids whose injections push them out, by sensitivity);
    the DSO's own loads' shares are in ``infos[a]["network_losses_dso_kw"]`` /
    ``["network_violation_dso"]``. ``network_fee_per_kwh_per_ohm`` adds a P2P fee that grows
    with the electrical distance between the traders' PCCs. See
    ``powergrid.network_costs``.

    ## Starting state
    All ESS at ``soc_init``, generators off; the start day is ``start_day`` or drawn from
    the days of ``split`` (None = all, "train", "test"; see ``powergrid.envs.days``).

    ## Episode end
    ``truncated`` after ``max_episode_steps``; never ``terminated``. Then ``agents`` is
    empty and ``step`` raises until ``reset``; ``state()`` before ``reset`` raises too.

    ## Power-flow failure
    A solve counts as converged only if the backend converged and every feeder voltage is
    in [0.5, 1.5] pu and every line loading <= 500 % (so any converged state costs a
    feeder at most a bound B). Otherwise ``infos[a]["pf_converged"] = False``, the episode
    continues, and nothing depends on the backend's iterate: every microgrid pays
    ``B + pf_failure_penalty * (1 + stress)`` (stress = demanded substation kVA / rating,
    from set-points), and infos and observations show the collapse state (``v_min_pu``
    0.5, ``v_max_pu`` 1.5, ``line_loading_max_pct`` 500), the last converged losses and the
    upstream import by energy balance. See ``powergrid.envs.safety``.

    ## Arguments
    ``config``: a dict (or ``EnvConfig``); see ``powergrid.envs.config.EnvConfig`` for every
    key, its default and unit. Unknown keys raise ``ValueError``.
    """

    metadata = {"name": "multi_agent_microgrids_v0", "render_modes": ["ansi", "human"],
                "is_parallelizable": True}

    def __init__(self, config: Mapping[str, Any] | EnvConfig | None = None, **overrides: Any):
        if overrides:
            base = dict(config) if isinstance(config, Mapping) else {}
            if isinstance(config, EnvConfig):
                raise TypeError("pass either an EnvConfig or keyword overrides, not both")
            config = {**base, **overrides}
        cfg = EnvConfig.from_dict(config)
        self.config = cfg
        self.render_mode = cfg.render_mode
        self.profiles = (load_profiles() if cfg.data is None else user_profiles(
            cfg.data, cfg.microgrids, cfg.max_episode_steps, cfg.dt_hours))
        self.retail_price = np.asarray(cfg.retail_price or self.profiles.retail_price, float)
        self.feed_in_price = np.asarray(cfg.feed_in_price or self.profiles.feed_in_price, float)
        if np.any(self.feed_in_price > self.retail_price):
            raise ValueError("config: feed_in_price must not exceed retail_price in any hour")
        self.protocol = self._make_protocol(cfg)
        self.vertical_protocol = copy.deepcopy(cfg.vertical_protocol)

        self.possible_agents = [m.name for m in cfg.microgrids]
        self._ahead = ahead_market.AheadParams.build(cfg)  # None: the real-time market
        market_labels = ("price",) if self._ahead is None else self._ahead.action_labels
        self._agents: dict[str, Agent] = {
            m.name: Agent(m.name, build_devices(m.devices, cfg.reactive_power),
                          extra_action_labels=market_labels)
            for m in cfg.microgrids}
        self._specs = {m.name: m for m in cfg.microgrids}
        # The microgrids; an operator agent (DSO), if any, is appended last. Coordination is
        # built before the network so that a nonsensical protocol combination fails fast.
        self._mg = list(self.possible_agents)
        self._coord = Coordination(cfg, self.protocol, self.vertical_protocol, self._mg,
                                   [self._specs[a].peak_load_kw for a in self._mg])
        self.network = make_network(cfg.network, [
            (m.name, m.load_scale,
             [FeederDevice(d.name, d.bus, d.element) for d in self._agents[m.name].devices])
            for m in cfg.microgrids], cfg.feeder)
        self.solver = make_solver(self.network.net, cfg.power_flow)
        self._load_rows = [self.network.load_rows[a] for a in self.possible_agents]
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._precompute_network_maps()
        self._days_split = DaySplit(self.profiles.n_start_days,
                                    episode_days(cfg.max_episode_steps, cfg.dt_hours))
        self._failure = FailureRule.build(cfg, self.network, self._mg)
        self._network_costs = self._build_network_costs(cfg)

        self.action_spaces = {a: spaces.Box(-1.0, 1.0, (ag.action_dim,), np.float32)
                              for a, ag in self._agents.items()}
        self.action_labels = {a: ag.action_labels for a, ag in self._agents.items()}
        self._build_observation_spaces(cfg)
        self.agents: list[str] = []
        self._rng = np.random.default_rng()
        self._t = 0
        self._last_infos: dict[str, dict] = {}
        self._started = False  # set by reset(); state() needs an episode's series
        self._info_schema: dict[str, tuple] | None = None  # built at the first reset

    # ------------------------------------------------------------------ PettingZoo API
    @property
    def microgrid_agents(self) -> list[str]:
        """The microgrid agents, in order (``possible_agents`` without an operator)."""
        return list(self._mg)

    @property
    def days_split(self) -> DaySplit:
        """The start days ``reset()`` draws from, per ``split``."""
        return self._days_split

    @property
    def network_costs(self) -> EnvNetworkCosts | None:
        """The loss/violation allocation and P2P network fee, or None when off."""
        return self._network_costs

    @property
    def coordination(self) -> Coordination:
        """The env's protocols and broker (``powergrid.envs.coordination``)."""
        return self._coord

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        # Validate everything first: a rejected reset must leave the env untouched.
        seed = check_seed(seed)
        opts = reset_options(options)
        split = opts.get("split", self.config.split)
        start_day = opts.get("start_day", self.config.start_day)
        if start_day is not None:
            start_day = self._days_split.check(start_day, split, "reset option 'start_day'")
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for i, a in enumerate(self.possible_agents):
                self.action_spaces[a].seed(seed + i)
                self.observation_spaces[a].seed(seed + i)
        self.start_day = (self._days_split.draw(self._rng, split) if start_day is None
                          else start_day)
        self.split = split
        self.agents = list(self.possible_agents)
        self._t = 0
        for ag in self._agents.values():
            for d in ag.devices:
                d.reset(self._rng)
        self.solver.reset()  # the horizontal protocol is reset by the coordination layer
        if self.vertical_protocol is not None:
            self.vertical_protocol.reset()
        self._build_episode_series()
        if self._ahead is not None:  # the batched stage's state with B = 1
            self._ahead_state = ahead_market.AheadState.empty(
                1, len(self._mg), self.config.max_episode_steps, self._ahead)
            z = ahead_market.forecast_normals(self._ahead, self.config.max_episode_steps,
                                              self._rng)
            fc = ahead_market.forecasts(self._ahead, self._load_kw[None], self._pv[None], z[None])
            self._ahead_state.load_fc[0], self._ahead_state.pv_fc[0] = fc[0][0], fc[1][0]
        self._coord.reset(seed, self._hours, self._retail, self._feed_in)
        n = len(self._mg)
        self._last_price = 0.0
        self._last_p2p = [0.0] * n
        self._last_grid = [0.0] * n
        self._v_min = [1.0] * n
        self._v_max = [1.0] * n
        self._last_pf: PFResult | None = None
        self._grid_mw = (0.0, 0.0)  # (upstream import, losses) as reported, for state()
        self._last_losses_mw = 0.0  # of the last converged solve: reported on failures
        self._last_pcc = [0.0] * n
        self._started = True
        self._stored_kwh_start = self._stored_kwh()
        obs = self._observations()
        self._last_infos = self._reset_infos()
        return obs, self._last_infos

    def step(self, actions: Mapping[str, Any]):
        if not self.agents:
            raise RuntimeError("step() called on an environment with no live agents: the "
                               "episode has ended (or reset() was never called); call reset()")
        acts, clipped = self._validate_actions(actions)
        t, dt = self._t, self.config.dt_hours
        # the operator's price signal (if any) replaces the tariff of this hour
        retail, feed_in = self._coord.tariff(t, float(self._retail[t]), float(self._feed_in[t]))
        net_kw, dev_cost, limited = self._dispatch(acts, t)
        settled = None
        if self._ahead is None:
            orders = self._orders(acts, net_kw, feed_in, retail)
            market = self._clear(orders)
        else:
            orders, market, settled = self._trade_ahead(acts, net_kw, retail, feed_in, t)
        sold = [market.sold(a) if market else 0.0 for a in self._mg]
        bought = [market.bought(a) if market else 0.0 for a in self._mg]
        # residual settled with the upstream grid: > 0 export, < 0 import
        exchange = [n * dt - s + b for n, s, b in zip(net_kw, sold, bought)]
        # at the tariff: everything, or (ahead) the residual beyond the imbalance volumes
        tariff_kwh = exchange if settled is None else settled.residual[0].tolist()
        tracking = self._coord.settle(np.array(exchange), np.array(net_kw) * dt, acts.get(DSO))
        pf = self._solve_power_flow(t)
        safety, (upstream_kw, losses_kw) = self._safety(pf, net_kw, t)
        network_terms, network_info = self._network_cost_terms(pf, safety, retail)
        price = market.clearing_price if market is not None and market.volume > 0 else None
        terminal = self._storage_terminal(t + 1 >= self.config.max_episode_steps)

        rewards, infos = {}, {}
        for i, a in enumerate(self._mg):
            grid_import, grid_export = max(-exchange[i], 0.0), max(exchange[i], 0.0)
            pay, rev, fees = money(market, a)
            gen, deg, other = dev_cost[i]
            costs = {
                "generation": gen, "degradation": deg, "other_devices": other,
                "grid_import": max(-tariff_kwh[i], 0.0) * retail,
                "grid_export_revenue": max(tariff_kwh[i], 0.0) * feed_in,
                "p2p_payment": pay, "p2p_revenue": rev, "fees": fees,
                "safety_penalty": safety[i]["penalty"],
                "tracking_penalty": float(tracking[i]),
                "storage_terminal": terminal[i],
                **(network_terms[i] if network_terms else {}),
            }
            if settled is not None:
                costs["imbalance"] = float(settled.imbalance_cost[0, i])
            costs["total"] = total = cost_total(costs)
            rewards[a] = -total
            infos[a] = {
                "hour": self._hours[t], "day": int(self._days[t]),
                "load_kw": float(self._load_kw[t, i]), "net_kw": net_kw[i],
                "devices": self._device_info(a),
                "market": {
                    "orders": [o for o in orders if o.agent == a],
                    "trades": [tr for tr in market.trades if a in (tr.buyer, tr.seller)]
                    if market else [],
                    # None (not NaN) when nothing cleared, so infos compare equal
                    "clearing_price": price,
                    "volume_kwh": market.volume if market else 0.0,
                    "bought_kwh": bought[i], "sold_kwh": sold[i],
                    **({} if settled is None else {
                        "shortfall_kwh": float(settled.shortfall[0, i]),
                        "excess_kwh": float(settled.excess[0, i])}),
                },
                "grid_import_kwh": grid_import, "grid_export_kwh": grid_export,
                "retail_price": retail, "feed_in_price": feed_in,
                "costs": costs,
                "action_clipped": clipped[a], "device_limited": limited[i],
                **safety[i]["metrics"],
                "upstream_import_kw": upstream_kw, "network_losses_kw": losses_kw,
                **network_info,
            }
        self._coord.annotate(infos, rewards)
        if self.config.share_reward:  # a team objective: the microgrids' total cost
            joint = math.fsum(rewards[a] for a in self._mg)
            rewards.update(dict.fromkeys(self._mg, joint))
        self._last_price = 0.0 if price is None else price
        self._last_p2p = [s - b for s, b in zip(sold, bought)]
        self._last_grid = exchange
        self._t += 1
        done = self._t >= self.config.max_episode_steps
        terminateds = {a: False for a in self.agents}
        truncateds = {a: done for a in self.agents}
        self._last_infos = infos
        obs = self._observations()
        for a, info in infos.items():
            info["start_day"], info["obs_clipped"] = self.start_day, self._obs_clipped[a]
        if done:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminateds, truncateds, infos

    def _stored_kwh(self) -> list[float]:
        return stored_kwh(self._ess)

    def _storage_terminal(self, last_step: bool) -> list[float]:
        if not last_step or self.config.storage_terminal_price == 0.0:
            return [0.0] * len(self._mg)
        return storage_terminal(self.config.storage_terminal_price, self._stored_kwh_start,
                                self._stored_kwh())

    def _dispatch(self, acts: dict[str, np.ndarray], t: int
                  ) -> tuple[list[float], list[list[float]], list[bool]]:
        """Devices apply their actions; returns net kW, cost per bucket and limit flags."""
        ctx = StepContext(hour=self._hours[t], dt_hours=self.config.dt_hours,
                          pv_per_kw=float(self._pv[t]))
        load_kw = self._load_kw[t].tolist()
        net_kw, dev_cost, limited = [], [], []
        for i, a in enumerate(self._mg):
            action, k, out, cost, lim, p_set = acts[a], 0, 0.0, [0.0, 0.0, 0.0], False, 0.0
            for d, bucket in self._devices_with_bucket[i]:
                out += d.step(action[k:k + d.action_dim], ctx)
                k += d.action_dim
                cost[bucket] += d.cost
                p_set += d.p_kw  # what the power flow reads
                lim = lim or d.clipped
            if not math.isfinite(out + p_set + sum(cost)):  # one check per agent, hot path
                self._raise_non_finite_device(a)
            net_kw.append(out - load_kw[i])
            dev_cost.append(cost)
            limited.append(lim)
        return net_kw, dev_cost, limited

    def _raise_non_finite_device(self, agent: str) -> None:
        """A device (typically a custom one) produced NaN/inf: stop before it reaches money."""
        for d in self._agents[agent].devices:
            for what, value in (("p_kw", d.p_kw), ("cost", d.cost)):
                if not math.isfinite(value):
                    raise ValueError(
                        f"device {d.name!r} ({type(d).__name__}) of agent {agent!r} returned "
                        f"{what}={value!r} from step(); a device must give finite power (kW) "
                        f"and cost ($)")
        raise ValueError(f"a device of agent {agent!r} returned a non-finite power from step() "
                         f"that differs from its p_kw; step() must return p_kw (finite, kW)")

    def _orders(self, acts: dict[str, np.ndarray], net_kw: list[float], feed_in: float,
                retail: float) -> list[Order]:
        """Surplus microgrids offer, deficit ones bid, |net| kWh at the limit from their action."""
        if self.protocol is None:
            return []
        return row_orders(self._mg, net_kw, [float(acts[a][-1]) for a in self._mg],
                          [self._coord.band(a, feed_in, retail) for a in self._mg],
                          self.config.dt_hours)

    def _trade_ahead(self, acts: dict[str, np.ndarray], net_kw: list[float], retail: float,
                     feed_in: float, t: int):
        """The ahead market's core stages with B = 1: deliver what is due at ``t`` (its
        ClearingResult and imbalance settlement), then place and clear the next orders."""
        ap, st, T = self._ahead, self._ahead_state, self.config.max_episode_steps
        due, settled = ahead_market.deliver(st, ap, np.array([net_kw]) * self.config.dt_hours,
                                            np.array([retail]), np.array([feed_in]))
        market_acts = np.stack([acts[a][-(1 + ap.levels):] for a in self._mg])[None]
        steps = np.array([t])
        retail_d, feed_in_d = ahead_market.delivery_tariff(self._retail[None],
                                                           self._feed_in[None], steps, ap.lead)
        placed = ahead_market.trade_rows(st, ap, self._mg, [self._coord], steps, T,
                                         market_acts, retail_d, feed_in_d, np.array([True]))
        return placed[0], due.results[0], settled

    def state(self) -> np.ndarray:
        if not self._started:
            raise RuntimeError("state() called before reset(): there is no episode yet; "
                               "call reset() first")
        ahead = self._ahead_columns()
        parts = [self._obs(a, ahead) for a in self.possible_agents]
        extra = np.array(self._grid_mw, np.float32)
        state = np.concatenate(parts + [extra]).astype(np.float32)
        return clip_observation(state, self.state_space)[0]

    def render(self) -> str | None:
        """``"ansi"`` returns the last step as text; ``"human"`` prints it and returns None."""
        if self.render_mode is None:
            return None
        from powergrid.envs.render import render_ansi

        text = render_ansi(self)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        self._coord.close()  # distributed mode over ZeroMQ: stop the endpoint processes

    # ------------------------------------------------------------------ internals
    def _build_observation_spaces(self, cfg: EnvConfig) -> None:
        """Finite Boxes (see powergrid.envs.spaces); same-shape microgrids share bounds."""
        cap, dt = price_cap(self.retail_price, self.vertical_protocol), cfg.dt_hours
        self.obs_labels: dict[str, tuple[str, ...]] = {}
        self.observation_spaces: dict[str, spaces.Box] = {}
        for a, ag in self._agents.items():
            devices: list[Feature] = [
                (label, lo, hi, "") for d in ag.devices
                for label, (lo, hi) in zip(d.obs_labels, d.observation_bounds())]
            ahead = () if self._ahead is None else ahead_market.AHEAD_OBS
            labels, low, high = resolve(
                (*COMMON_OBS, *ahead, *devices, *self._coord.extra_obs), cap, dt)
            self.obs_labels[a] = labels
            self.observation_spaces[a] = box(low, high)
        self.observation_spaces = unify_same_shape(self.observation_spaces, self._mg)
        if self._coord.has_dso:  # a learning operator: one more agent, acting on the price
            self.possible_agents.append(DSO)
            self.action_spaces[DSO] = spaces.Box(-1.0, 1.0, (1,), np.float32)
            self.action_labels[DSO] = ("price",)
            self.obs_labels[DSO], low, high = resolve(DSO_OBS, cap, dt)
            self.observation_spaces[DSO] = box(low, high)
        # state(): every observation, then the upstream exchange and losses (MW), bounded
        # like the exchange features by EXCHANGE_BOUND x the total peak load per hour
        flow = EXCHANGE_BOUND * float(sum(m.peak_load_kw for m in cfg.microgrids)) * 1e-3
        parts = [self.observation_spaces[a] for a in self.possible_agents]
        self.state_space = box(np.concatenate([p.low for p in parts] + [[-flow, 0.0]]),
                               np.concatenate([p.high for p in parts] + [[flow, flow]]))
        self._obs_clipped = dict.fromkeys(self.possible_agents, False)

    @staticmethod
    def _make_protocol(cfg: EnvConfig) -> HorizontalProtocol | None:
        proto = copy.deepcopy(cfg.horizontal_protocol)
        if proto is None:
            if cfg.clearing is not None or cfg.trading_fee is not None:
                raise ValueError("config keys 'clearing'/'trading_fee' need a trading protocol; "
                                 "horizontal_protocol is None")
            return None
        if cfg.clearing is not None or cfg.trading_fee is not None:
            if not hasattr(proto, "clearing_rule"):
                raise ValueError(f"config keys 'clearing'/'trading_fee' apply to "
                                 f"P2PTradingProtocol, not {type(proto).__name__}")
            from heron.market import make_clearing_rule

            if cfg.clearing is not None:
                proto.clearing_rule = make_clearing_rule(cfg.clearing)
            if cfg.trading_fee is not None:
                proto.trading_fee = float(cfg.trading_fee)
        fee = getattr(proto, "trading_fee", None)
        if fee is not None and PRICE_PER_KWH.coerce(fee) is None:  # a protocol built by hand
            raise ValueError(f"trading_fee {fee!r} of horizontal_protocol is invalid: expected "
                             f"{PRICE_PER_KWH.describe()}")
        return proto

    def _precompute_network_maps(self) -> None:
        """Index arrays and slices so the per-step hot path avoids Python-level searches."""
        net = self.network
        self._n_sgen, self._n_storage = len(net.net.sgen), len(net.net.storage)
        self._load_owner = np.zeros(len(net.load_share), dtype=np.intp)
        for i, rows in enumerate(self._load_rows):
            self._load_owner[rows] = i
        self._load_share_mw = net.load_share * 1e-3  # 0 on the feeder's own loads
        # the feeder's own (background) loads: published MW x the residential profile
        self._feeder_load_rows = net.feeder_load_rows
        self._feeder_load_mw = net.net.load["p_mw"].to_numpy(float)[net.feeder_load_rows]
        self._feeder_buses = net.feeder_bus_rows
        self._pcc_rows = np.array([net.pcc_trafo_rows[a] for a in self._mg])
        self._load_q_ratio = net.load_q_ratio
        self._flat_device_rows = [(d, *net.device_rows[(a, d.name)])
                                  for a in self._mg for d in self._agents[a].devices]
        self._ess = [[d for d in self._agents[a].devices if isinstance(d, ESS)] for a in self._mg]

        def contiguous(rows: np.ndarray) -> slice:
            # feeders are built one after another, so their rows form one block each
            assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
            return slice(int(rows[0]), int(rows[-1]) + 1)

        self._bus_slices = [contiguous(net.bus_rows[a]) for a in self._mg]
        self._line_slices = [contiguous(net.line_rows[a]) for a in self._mg]
        # adjacent feeder blocks let one reduceat give every feeder's min/max at once
        self._bus_block = slice(self._bus_slices[0].start, self._bus_slices[-1].stop)
        self._line_block = slice(self._line_slices[0].start, self._line_slices[-1].stop)
        self._bus_offsets = np.array([b.start for b in self._bus_slices]) - self._bus_block.start
        self._line_offsets = (np.array([b.start for b in self._line_slices])
                              - self._line_block.start)
        self._device_keys = {a: [(d, device_info_keys(d)) for d in self._agents[a].devices]
                             for a in self._mg}
        self._devices_with_bucket = [[(d, _cost_bucket(d)) for d in self._agents[a].devices]
                                     for a in self._mg]

    def _build_episode_series(self) -> None:
        s = episode_series(self.config, self.profiles, self.retail_price, self.feed_in_price,
                           [self._specs[a] for a in self._mg], self.start_day,
                           self._rng)
        self.series = s
        self._hours = s.hours.tolist()
        self._days = s.days
        self._pv, self._retail, self._feed_in = s.pv_per_kw, s.retail, s.feed_in
        self._load_forecast, self._load_kw = s.load_forecast_kw, s.load_kw
        self._peak = np.array([self._specs[a].peak_load_kw for a in self._mg])
        self._feeder_load_pu = self.profiles.load("residential")[s.days, s.hours]

    def _reset_infos(self) -> dict[str, dict[str, Any]]:
        """Step-shaped infos before the first step, from the info schema."""
        if self._info_schema is None:
            vertical, consensus = self._coord.info_schema()
            network = self._network_costs is not None
            self._info_schema = {a: microgrid_schema(self._agents[a].devices, vertical,
                                                     consensus, network,
                                                     self._ahead is not None)
                                 for a in self._mg}
            if self._coord.has_dso:
                self._info_schema[DSO] = operator_schema()
        infos = {a: nested(self._info_schema[a]) for a in self.agents}
        for a, info in infos.items():
            info.update(start_day=self.start_day, obs_clipped=self._obs_clipped[a])
            if "hour" in info:
                info.update(hour=self._hours[0], day=int(self._days[0]))
        return infos

    def _validate_actions(self, actions: Mapping[str, Any]) -> tuple[dict, dict]:
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict {{agent: action}}, got "
                             f"{type(actions).__name__}")
        unknown = [a for a in actions if a not in self.possible_agents]
        if unknown:
            raise ValueError(f"actions for unknown agent(s) {unknown}; "
                             f"agents are {self.possible_agents}")
        done = [a for a in actions if a not in self.agents]
        if done:
            raise ValueError(f"actions for agent(s) {done} that are done this episode")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"missing actions for agent(s) {missing}: every live agent must act")
        out, clipped = {}, {}
        for a in self.agents:
            arr = action_array(a, actions[a], self.action_spaces[a].shape)
            # plain-Python checks: for 1-4 components they beat numpy's per-call overhead
            values = arr.tolist()
            if not all(map(math.isfinite, values)):
                raise ValueError(f"action for {a!r} contains NaN or inf: {values}")
            bounded = [min(max(v, -1.0), 1.0) for v in values]
            clipped[a] = bounded != values
            out[a] = np.array(bounded)
        return out, clipped

    def _clear(self, orders: list[Order]):
        return self._coord.clear(orders)  # centralized, or through the broker

    # ------------------------------------------------------------------ network costs
    def _build_network_costs(self, cfg: EnvConfig) -> EnvNetworkCosts | None:
        """Loss/violation allocation and the P2P network-use fee, if configured (kept apart
        from the step so the off path costs nothing; see ``powergrid.network_costs``)."""
        settings = NetworkCostSettings(cfg.network_costs, cfg.loss_price,
                                       cfg.network_fee_per_kwh_per_ohm)
        if not settings.active:
            return None
        model = getattr(self.solver, "model", None) or NetworkModel.from_net(self.network.net)
        hook = EnvNetworkCosts(settings, self.network, model, cfg.voltage_band,
                               cfg.voltage_penalty_per_pu, cfg.line_overload_penalty_per_pct)
        fees = hook.pair_fees()
        if fees is not None and self.protocol is not None:  # the market and the bands see it
            self.protocol.pair_fee = fees  # type: ignore[union-attr]
        return hook

    def _network_cost_terms(self, pf: PFResult, safety: list[dict[str, Any]], retail: float
                            ) -> tuple[list[dict[str, float]], dict[str, float]]:
        """``network_losses`` / ``network_violation`` per microgrid and the DSO's shares."""
        if self._network_costs is None:
            return [], {}
        converged = bool(safety[0]["metrics"]["pf_converged"])
        return self._network_costs.step(pf, converged, retail, self.config.dt_hours)

    def _solve_power_flow(self, t: int) -> PFResult:
        load_p = self._load_kw[t][self._load_owner] * self._load_share_mw
        if len(self._feeder_load_rows):
            load_p[self._feeder_load_rows] = self._feeder_load_mw * self._feeder_load_pu[t]
        sgen_p = np.zeros(self._n_sgen)
        storage_p = np.zeros(self._n_storage)
        for d, element, row in self._flat_device_rows:
            if element == "storage":
                storage_p[row] = -d.p_kw * 1e-3  # pandapower storage: positive = charging
            else:
                sgen_p[row] = d.p_kw * 1e-3
        q = reactive_setpoints(self._flat_device_rows, self._n_sgen, self._n_storage) \
            if self.config.reactive_power else ()
        pf = self.solver.solve(load_p, load_p * self._load_q_ratio, sgen_p, storage_p, *q)
        self._last_pf = pf  # the raw backend result (read it only when pf.converged)
        return pf

    def _safety(self, pf: PFResult, net_kw: list[float], t: int
                ) -> tuple[list[dict[str, Any]], tuple[float, float]]:
        """Penalty and metrics per microgrid, from its own feeder's buses and lines.

        Also returns the network's (upstream import, losses) in kW. A failed or
        inadmissible solve follows ``powergrid.envs.safety`` instead of reading ``pf``.
        """
        cfg = self.config
        lo, hi = cfg.voltage_band
        vm = pf.vm_pu[self._bus_block]
        loading = pf.line_loading_percent[self._line_block]
        v_min = np.minimum.reduceat(vm, self._bus_offsets).tolist()
        v_max = np.maximum.reduceat(vm, self._bus_offsets).tolist()
        l_max = np.maximum.reduceat(loading, self._line_offsets).tolist()
        v_feeder = pf.vm_pu[self._feeder_buses]
        pcc = pf.trafo_loading_percent[self._pcc_rows].tolist()
        feeder_v = (float(v_feeder.min()), float(v_feeder.max())) if len(v_feeder) else (1.0, 1.0)
        rule = self._failure
        converged = bool(pf.converged) and bool(rule.admissible(
            min(v_min + [feeder_v[0]]), max(v_max + [feeder_v[1]]), max(l_max)))
        if converged:
            grid_mw = (float(pf.p_slack_mw), float(pf.losses_mw))
            self._last_losses_mw = grid_mw[1]
            self._last_pcc = pcc
        else:  # the collapse state of the rule, never the solver's iterate
            net = np.array(net_kw)
            fail = rule.penalty(net, self._load_kw[t]).tolist()
            losses_mw = float(rule.losses_kw(self._last_losses_mw))
            background_kw = (float(np.sum(self._feeder_load_mw * self._feeder_load_pu[t])) * 1e3
                             if len(self._feeder_load_rows) else 0.0)
            grid_mw = (float(rule.upstream_import_kw(net, losses_mw * 1e3, background_kw)) * 1e-3,
                       losses_mw)
            pcc = np.maximum(self._last_pcc, 100.0 * rule.stress(net, self._load_kw[t])).tolist()
            feeder_v = (V_FLOOR_PU, V_CEIL_PU)
        feeder = {"feeder_v_min_pu": feeder_v[0], "feeder_v_max_pu": feeder_v[1],
                  "pcc_loading_max_pct": max(pcc)}
        out = []
        for i in range(len(self._mg)):
            soc_violation = any(
                not (d.params.soc_min - 1e-9 <= d.soc <= d.params.soc_max + 1e-9)
                for d in self._ess[i])
            if not converged:  # the collapse state of the rule, never the solver's iterate
                v_min[i], v_max[i], l_max[i] = V_FLOOR_PU, V_CEIL_PU, LOADING_CEIL_PCT
                out.append({"penalty": fail[i], "metrics": {
                    "pf_converged": False, "v_min_pu": V_FLOOR_PU, "v_max_pu": V_CEIL_PU,
                    "voltage_violation_pu": float(rule.voltage_violation_pu[i]),
                    "line_loading_max_pct": LOADING_CEIL_PCT, "pcc_loading_pct": pcc[i],
                    **feeder, "soc_violation": soc_violation,
                }})
                continue
            v_violation = overload = 0.0
            if v_min[i] < lo or v_max[i] > hi:  # rare: only then pay for the full sum
                v = pf.vm_pu[self._bus_slices[i]]
                v_violation = float(np.sum(np.maximum(v - hi, 0.0) + np.maximum(lo - v, 0.0)))
            if l_max[i] > 100.0:
                ld = pf.line_loading_percent[self._line_slices[i]]
                overload = float(np.sum(np.maximum(ld - 100.0, 0.0)))
            penalty = (cfg.voltage_penalty_per_pu * v_violation
                       + cfg.line_overload_penalty_per_pct * overload)
            out.append({"penalty": penalty, "metrics": {
                "pf_converged": True,
                "v_min_pu": v_min[i], "v_max_pu": v_max[i],
                "voltage_violation_pu": v_violation,
                "line_loading_max_pct": l_max[i],
                "pcc_loading_pct": pcc[i],
                **feeder,
                "soc_violation": soc_violation,
            }})
        self._v_min, self._v_max = v_min, v_max
        self._grid_mw = grid_mw
        return out, (grid_mw[0] * 1e3, grid_mw[1] * 1e3)

    def _device_info(self, agent: str) -> dict[str, dict[str, float]]:
        return {d.name: {k: getattr(d, k) for k in keys}
                for d, keys in self._device_keys[agent]}

    def _observe(self, agent: str, ahead: np.ndarray | None) -> np.ndarray:
        i = self._index[agent]
        t = min(self._t, self.config.max_episode_steps - 1)
        peak = self._peak[i]
        angle = 2 * math.pi * self._hours[t] / 24
        feats = common_features({
            "load_now": self._load_forecast[t, i] / peak,
            "load_next": self._load_forecast[t + 1, i] / peak,
            "pv_now": self._pv[t], "pv_next": self._pv[t + 1],
            "hour_sin": math.sin(angle), "hour_cos": math.cos(angle),
            "retail_price": self._retail[t], "feed_in_price": self._feed_in[t],
            "last_clearing_price": self._last_price,
            "last_p2p_kwh": self._last_p2p[i] / peak, "last_grid_kwh": self._last_grid[i] / peak,
            "v_min_pu": self._v_min[i], "v_max_pu": self._v_max[i]})
        if ahead is not None:
            feats.extend(ahead[i].tolist())
        for d in self._agents[agent].devices:
            feats.extend(d.observe())
        feats.extend(self._coord.extra_obs_values(agent))  # [] unless a vertical protocol
        obs = np.array(feats, np.float32)
        if not np.isfinite(obs).all():  # never hand a policy NaN/inf, nor hide it as 0
            self._raise_non_finite_obs(agent, obs)
        return obs  # clipped to the space, and flagged, by _obs

    def _raise_non_finite_obs(self, agent: str, obs: np.ndarray) -> None:
        labels = self.obs_labels[agent]
        bad = [labels[k] for k in np.flatnonzero(~np.isfinite(obs))]
        for d in self._agents[agent].devices:
            values = np.asarray(d.observe(), float)
            if not np.isfinite(values).all():
                raise ValueError(f"device {d.name!r} ({type(d).__name__}) of agent {agent!r} "
                                 f"observed non-finite {bad} = {values.tolist()}; observe() "
                                 f"must return finite numbers")
        raise ValueError(f"observation of agent {agent!r} has non-finite features {bad}")

    def _observations(self) -> dict[str, np.ndarray]:
        ahead = self._ahead_columns()
        return {a: self._obs(a, ahead) for a in self.agents}

    def _ahead_columns(self) -> np.ndarray | None:
        """(N, features) ahead-market observation columns of every microgrid (once per
        step for all agents), or None in the real-time market."""
        if self._ahead is None:
            return None
        cols = ahead_market.observe(self._ahead_state, self._ahead, np.array([self._t]),
                                    self._retail[None], self._feed_in[None],
                                    self._load_kw[None], self._peak)
        return np.stack([cols[k][0] for k in ahead_market.AHEAD_LABELS], axis=1)

    def _obs(self, agent: str, ahead: np.ndarray | None) -> np.ndarray:
        """Any agent's observation, inside its space: the operator's comes from coordination;
        ``ahead`` holds the ahead-market columns (``_ahead_columns``)."""
        raw = (self._coord.dso_observation() if agent == DSO and self._coord.has_dso
               else self._observe(agent, ahead))
        obs, self._obs_clipped[agent] = clip_observation(raw, self.observation_spaces[agent])
        return obs

    def devices(self, agent: str) -> list[PowerDevice]:
        """The live device objects of ``agent`` (read their state; do not mutate)."""
        return list(self._agents[agent].devices)
