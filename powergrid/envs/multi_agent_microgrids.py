"""MultiAgentMicrogrids: IEEE-13 microgrids that trade energy peer-to-peer on AC power flow."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from heron.agents import Agent
from heron.protocols.base import HorizontalProtocol
from powergrid.core import ahead as ahead_market
from powergrid.core.infos import (
    NestedRenderer,
    device_info_keys,
    microgrid_schema,
    operator_schema,
)
from powergrid.core.layout import COMMON_OBS
from powergrid.core.layout import COST_SIGNS as COST_SIGNS  # re-exported: public name
from powergrid.core.market import EPS_KWH as EPS_KWH  # re-exported: public name
from powergrid.core.rows import RowLayout, RowTable
from powergrid.data import load_profiles
from powergrid.data.user import user_profiles
from powergrid.devices import PowerDevice
from powergrid.devices.batched import PerRowDevices, batched, has_compiled_twin
from powergrid.devices.inverter import build_devices
from powergrid.envs.actions import action_array
from powergrid.envs.config import EnvConfig
from powergrid.envs.coordination import DSO, DSO_OBS, Coordination
from powergrid.envs.days import DaySplit, episode_days
from powergrid.envs.options import check_seed, reset_options
from powergrid.envs.series import EpisodeSeries
from powergrid.envs.spaces import (
    EXCHANGE_BOUND,
    Feature,
    SideBySide,
    box,
    clip_observation,
    price_cap,
    resolve,
    unify_same_shape,
)
from powergrid.envs.step_infos import InfoPlan, slot_value, split_market
from powergrid.limits import PRICE_PER_KWH
from powergrid.network_costs import EnvNetworkCosts, NetworkCostSettings
from powergrid.networks import FeederDevice, make_network
from powergrid.pf import NetworkModel, make_solver

# _reset_infos: the values reset() reports, by info name
RESET_SOURCE = {"start_day": "e[0]", "hour": "e[1]", "day": "e[2]", "obs_clipped": "clipped"}


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
        self._precompute_device_keys()
        self._days_split = DaySplit(self.profiles.n_start_days,
                                    episode_days(cfg.max_episode_steps, cfg.dt_hours))
        self._network_costs = self._build_network_costs(cfg)

        self.action_spaces = {a: spaces.Box(-1.0, 1.0, (ag.action_dim,), np.float32)
                              for a, ag in self._agents.items()}
        self.action_labels = {a: ag.action_labels for a, ag in self._agents.items()}
        self._build_observation_spaces(cfg)
        self._action_shapes = tuple((a, self.action_spaces[a].shape) for a in self.possible_agents)
        ends = np.cumsum([0] + [self.action_spaces[a].shape[0] for a in self.possible_agents])
        self._action_cols = tuple(zip(ends[:-1].tolist(), ends[1:].tolist()))
        self._not_clipped = [False] * len(self.possible_agents)  # read-only: shared by steps
        self._max_steps = cfg.max_episode_steps
        self.agents: list[str] = []
        self._rng = np.random.default_rng()
        self._t = 0
        self._last_infos: dict[str, dict] = {}
        self._started = False  # set by reset(); state() needs an episode's series
        self._info_schema: dict[str, tuple] | None = None  # built at the first reset
        self._plan: InfoPlan | None = None  # built at the first step
        self._reset_renders: list[Callable[..., dict]] | None = None  # at the first reset
        self._build_core()
        # annotate() adds nothing to the infos' neutral values unless a step has signals,
        # deliveries, consensus or an operator (StepNeeds.signal)
        self._annotates = self._coord.needs.signal

    def __getstate__(self) -> dict[str, Any]:
        # the generated info renderers do not pickle: rebuilt at the next reset()/step()
        return {**self.__dict__, "_plan": None, "_reset_renders": None}

    # ------------------------------------------------------------------ PettingZoo API
    @property
    def last_infos(self) -> dict[str, dict]:
        """The infos of the last ``reset()``/``step()`` (what ``render`` shows)."""
        return self._last_infos

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
    def sim(self) -> Any:
        """The simulation core this env steps with B = 1 (``powergrid.core.step.Simulation``,
        as ``VectorMicrogrids.sim``): for profiling and tools; its state is the env's."""
        return self._sim

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
        self.split = split
        self.agents = list(self.possible_agents)
        sim = self._sim
        sim.reset_rows(self._live, [self._rng], [start_day], split, [seed])
        st = sim.state
        self.start_day = int(st.start_day[0])
        self.series = EpisodeSeries(st.hours[0].copy(), st.days[0].copy(), st.pv[0].copy(),
                                    st.retail[0].copy(), st.feed_in[0].copy(),
                                    st.load_forecast[0].copy(), st.load_kw[0].copy())
        self._hours, self._days = self.series.hours.tolist(), self.series.days.tolist()
        self._t = 0
        self._sync_devices()
        self._shared_row: list | None = None  # the last step's shared outputs, for state()
        self._started = True
        obs = self._observations()
        self._last_infos = self._reset_infos()
        return obs, self._last_infos

    def step(self, actions: Mapping[str, Any]):
        if not self.agents:
            raise RuntimeError("step() called on an environment with no live agents: the "
                               "episode has ended (or reset() was never called); call reset()")
        acts, clipped = self._validate_actions(actions)
        t = self._t
        out = self._sim.step(acts, self._live)
        self._sync_devices()
        per, shared = out.per_agent, out.shared
        if type(per) is not RowTable or type(shared) is not RowTable:
            per, shared = RowTable.of(per), RowTable.of(shared)
        plan = self._plan
        if plan is None or not plan.fits(per.layout, shared.layout):
            plan = self._info_plan(per.layout, shared.layout)
        P, S = per.lists(0), shared.lists(0)  # one list per output array
        net, total = slot_value(P, plan.net_kw), slot_value(P, plan.total)
        if not math.isfinite(sum(net) + sum(total)):  # NaN/inf: find the agent
            for i, a in enumerate(self._mg):  # the scalar env's check: one per agent
                if not math.isfinite(net[i] + total[i]):
                    self._raise_non_finite_device(a)
        rewards = dict(zip(self._mg, out.rewards[0].tolist()))
        obs = self._observations()  # before the infos, which report obs_clipped
        infos = self._step_infos(t, out, plan, P, S, clipped, rewards)
        self._shared_row = S
        self._t = t + 1
        done = t + 1 >= self._max_steps
        terminateds = dict.fromkeys(self.agents, False)
        truncateds = dict.fromkeys(self.agents, done)
        self._last_infos = infos
        if done:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminateds, truncateds, infos

    def _build_core(self) -> None:
        """The simulation core with B = 1 (``powergrid.core.step.Simulation``): every row
        clears through this env's own Coordination (protocol and broker state stay one
        object). Device objects stay live: plain-Python devices are stepped in place
        (``PerRowDevices(share=True)``), built-in ones by their compiled twins, whose row
        is written back into the objects after every reset and step (``_sync_devices``),
        so ``devices(a)`` always shows the current state."""
        from powergrid.core.step import Simulation

        rows = [[batched(d, 1) if has_compiled_twin(d) else PerRowDevices(d, 1, share=True)
                 for d in self._agents[a].devices] for a in self._mg]
        self._twins = [(bd.write_row, d) for devs, a in zip(rows, self._mg)
                       for bd, d in zip(devs, self._agents[a].devices) if bd.compiled]
        self._live = np.ones(1, bool)
        self._sim = Simulation(self, 1, row_market=True, coords=[self._coord], devices=rows,
                               share_solver=True)
        # the spaces' layout is the core's (Simulation.obs_offsets, the one definition)
        self._obs_box.check_layout(self._sim.obs_offsets)

    def _sync_devices(self) -> None:
        for write_row, device in self._twins:
            write_row(device, 0)

    def _info_plan(self, per: RowLayout, shared: RowLayout) -> InfoPlan:
        """The step infos' plan for new core output layouts (at the first step, and when
        a Python stage extends the tables)."""
        self._plan = InfoPlan.build(per, shared, self._mg,
                                    [self._renderers[a] for a in self._mg],
                                    [self._device_keys[a] for a in self._mg])
        return self._plan

    def _step_infos(self, t: int, out: Any, plan: InfoPlan, P: list, S: list,
                    clipped: list[bool], rewards: dict[str, float]
                    ) -> dict[str, dict[str, Any]]:
        """The nested infos of one step, rendered from the core's output tables through the
        info schema (``InfoPlan``), then the coordination's annotations."""
        market = out.market
        result = market.results[0] if market is not None and market.results else None
        orders = (market.orders[0] if market is not None and market.orders else None) or []
        price = (result.clearing_price if result is not None and result.volume > 0
                 else None)
        coordinated = self._sim.coords is not None  # else no protocol ever ran this step
        retail, feed_in = (self._coord.tariff_now if coordinated
                           else (float(self.series.retail[t]), float(self.series.feed_in[t])))
        common = (self._hours[t], int(self._days[t]), price, retail, feed_in,
                  result.volume if result is not None else 0.0, self.start_day)
        mine, deals = split_market(self._mg, orders,
                                   result.trades if result is not None else None)
        flags = self._obs_flags
        infos = plan.render(S, P, common, plan.devices, clipped, mine, deals, flags)
        if coordinated and self._annotates:
            self._coord.annotate(infos, rewards)
            if self._coord.has_dso:  # the operator's infos are the coordination's own
                infos[DSO]["start_day"], infos[DSO]["obs_clipped"] = self.start_day, flags[-1]
        return infos

    def _raise_non_finite_device(self, agent: str) -> None:
        """A device (typically a custom one) produced NaN/inf: stop before it reaches money."""
        for d in self._agents[agent].devices:
            for what, value in (("p_kw", d.p_kw), ("cost", d.cost)):
                if not math.isfinite(value):
                    raise ValueError(
                        f"device {d.name!r} ({type(d).__name__}) of agent {agent!r} returned "
                        f"{what}={float(value)!r} from step(); a device must give finite power (kW) "
                        f"and cost ($)")
        raise ValueError(f"a device of agent {agent!r} returned a non-finite power from step() "
                         f"that differs from its p_kw; step() must return p_kw (finite, kW)")

    def state(self) -> np.ndarray:
        if not self._started:
            raise RuntimeError("state() called before reset(): there is no episode yet; "
                               "call reset() first")
        S, plan = self._shared_row, self._plan
        grid_mw = ((0.0, 0.0) if S is None or plan is None else  # (upstream import, losses)
                   (slot_value(S, plan.upstream) * 1e-3, slot_value(S, plan.losses) * 1e-3))
        state = np.concatenate((self._observe_all(), np.array(grid_mw, np.float32)))
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
        self._obs_flags = [False] * len(self.possible_agents)
        # every agent observed and clipped in one pass (the core's observe_all layout)
        self._obs_box = SideBySide.of(parts)
        off = self._obs_box.offsets.tolist()
        self._obs_slices = [(a, off[k], off[k + 1]) for k, a in enumerate(self.possible_agents)]

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

    def _precompute_device_keys(self) -> None:
        """The info keys of each device (read from the live objects every step)."""
        self._device_keys = {a: [(d, device_info_keys(d)) for d in self._agents[a].devices]
                             for a in self._mg}

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
            self._renderers = {a: NestedRenderer(f) for a, f in self._info_schema.items()}
        if self._reset_renders is None:
            # the step's rendering with nothing measured: every other leaf is its neutral
            # value (generated like the step's: a walk of the plan costs ~1 us per step)
            self._reset_renders = [self._renderers[a].function("e, clipped", RESET_SOURCE)
                                   for a in self.possible_agents]
        episode = (self.start_day, self._hours[0], int(self._days[0]))
        return {a: render(episode, flag) for a, render, flag in
                zip(self.possible_agents, self._reset_renders, self._obs_flags)}

    def _validate_actions(self, actions: Mapping[str, Any]
                          ) -> tuple[list[np.ndarray], list[bool]]:
        """The actions as new float64 (1, action_dim) arrays in ``possible_agents`` order
        (the core's input), and whether each was clipped to [-1, 1]."""
        if type(actions) is dict and len(actions) == len(self.agents):
            # the common case, checked in one pass: a dict of exactly the live agents' float
            # arrays of their shapes, finite and in bounds (nothing to clip), packed in one
            # array of which each agent gets its view
            values: list[float] = []
            for a, shape in self._action_shapes:
                arr = actions.get(a)
                if type(arr) is not np.ndarray or arr.dtype.kind != "f" or arr.shape != shape:
                    break
                values += arr.tolist()
            else:  # a finite sum: no NaN/inf (each value is within bounds)
                if -1.0 <= min(values) and max(values) <= 1.0 and math.isfinite(sum(values)):
                    packed = np.array(values, ndmin=2)
                    return [packed[:, lo:hi] for lo, hi in self._action_cols], self._not_clipped
        return self._check_actions(actions)

    def _check_actions(self, actions: Mapping[str, Any]) -> tuple[list[np.ndarray], list[bool]]:
        """Every check of ``_validate_actions``, one error per mistake."""
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
            out[a] = np.array((bounded,))
        return ([out[a] for a in self.possible_agents],
                [clipped[a] for a in self.possible_agents])

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

    def _raise_non_finite_obs(self, raw: np.ndarray) -> NoReturn:
        """A feature is NaN/inf in float32: raise naming it and, if any, the device."""
        for agent, lo, hi in self._obs_slices:
            obs = raw[lo:hi].astype(np.float32)
            if np.isfinite(obs).all():
                continue
            labels = self.obs_labels[agent]
            bad = [labels[k] for k in np.flatnonzero(~np.isfinite(obs))]
            for d in self._agents[agent].devices if agent in self._agents else ():
                values = np.asarray(d.observe(), float)
                if not np.isfinite(values).all():
                    raise ValueError(f"device {d.name!r} ({type(d).__name__}) of agent "
                                     f"{agent!r} observed non-finite {bad} = "
                                     f"{values.tolist()}; observe() must return finite numbers")
            raise ValueError(f"observation of agent {agent!r} has non-finite features {bad}")
        raise AssertionError("_raise_non_finite_obs: every observation is finite")

    def _observations(self) -> dict[str, np.ndarray]:
        """The live agents' observations: views of one new array per call, so a kept
        observation is never overwritten by a later step."""
        obs = self._observe_all()  # every agent is live whenever observed (reset, step)
        return {a: obs[lo:hi] for a, lo, hi in self._obs_slices}

    def _observe_all(self) -> np.ndarray:
        """Every possible agent's observation from the core, side by side (float32), each
        inside its space (clipped and flagged in ``_obs_flags``, per possible agent); never
        NaN/inf, which raise naming the feature."""
        raw = self._sim.observe_all()[0]
        clipped = self._obs_box.clip(raw)
        if clipped is None:
            self._raise_non_finite_obs(raw)
        obs, self._obs_flags = clipped
        return obs

    def devices(self, agent: str) -> list[PowerDevice]:
        """The live device objects of ``agent`` (read their state; do not mutate)."""
        return list(self._agents[agent].devices)
