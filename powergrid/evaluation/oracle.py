"""The perfect-foresight optimum of one episode: a MILP of the env's own model, replayable.

``optimum(env_or_scenario, day)`` builds the env, resets it with ``seed`` on ``day``, reads
the realised series of that episode (loads with their seeded noise, PV, tariffs) and solves
the whole episode at once with ``scipy.optimize.milp`` (HiGHS). It returns the actions that
achieve the optimum, the env's own cost of those actions (obtained by stepping them in the
env) and a lower bound from the solver, so the remaining gap is known.

Formulation (per microgrid i, step t, with dt the step length in hours)

* Generator: on/off ``u_t`` (binary), output ``p_t`` in ``[p_min u_t, p_max u_t]``,
  start-up ``y_t`` = ``u_t (1 - u_{t-1})`` (three linear rows, exact for binary u), off
  before the first step. Ramp: ``p_t - p_{t-1} <= R u_{t-1} + SU y_t`` and
  ``p_{t-1} - p_t <= R u_t + p_max (1 - u_t)`` with ``R = ramp dt`` and ``SU =
  max(p_min, min(R, p_max))`` (the env starts a unit at ``max(p_min, min(target, R))`` and
  shuts it down from any output). Fuel ``f_t >= dt (c u_t + b p_t + a (2 q p_t - q^2 u_t))``
  for tangent points q, the perspective of the quadratic's tangents, so ``f_t >= 0`` when
  off; tangents are added at the solution (LPs at its commitment, then the MILP again
  for the bound) until ``gap <= rel_gap x cost``.
* ESS: charge ``c_t``, discharge ``d_t`` in ``[0, p_max]``, a binary mode so that only
  one is non-zero (as the env's signed set-point); energy ``E_{t+1} = E_t + dt (eta_c c_t -
  d_t / eta_d)`` within ``[soc_min, soc_max] x capacity`` (the env's charge/discharge
  limits are exactly these bounds); degradation ``cost dt (c_t + d_t)``; the terminal term
  ``storage_terminal_price (E_0 - E_T)``.
* Solar: output in ``[0, available_t]`` (curtailment is free).
* Market and grid: net ``n_it = s_it - g_it`` (surplus, deficit >= 0); one order per
  microgrid, so the book clears ``V_t = min(sum s, sum g) dt`` when every limit crosses
  (sellers at the bottom of the band, buyers at the top; true for uniform, pay-as-bid and
  the continuous double auction). Fees are per traded kWh, half on each side. Payments between microgrids cancel in the total, so a
  step costs ``retail (dt sum g - V) - feed_in (dt sum s - V) + fee V``; ``V <= dt sum s``,
  ``V <= dt sum g`` and V is maximised whenever ``retail - feed_in > fee`` (with a smaller
  spread the env's fee-adjusted band ``[feed_in + fee/2, retail - fee/2]`` is empty, no
  order is posted and ``V = 0``; with an equal one a trade gains nothing). Splitting a net
  into both s and g never pays (it adds a grid round trip or a fee): the relaxation is tight.

Why exact: every constraint is the env's rule rewritten (the reachable set of each
device given its state), the objective is the env's cost with the quadratic fuel cost
bounded from below by tangents, so the MILP optimum is a lower bound on the env's optimum
(``mip_objective``). The returned actions are the inverse of the env's action mappings,
computed step by step from the live device state while stepping them in a fresh env, so
``cost`` IS the env's cost of those actions; it must equal the model's exact cost of its
solution (checked, or ``RuntimeError``), and ``gap = cost - mip_objective``.

The ahead market (``market_timing="ahead"``, lead ``k``): with perfect foresight each
microgrid commits at ``t - k`` exactly the net position its plan has at ``t`` (sellers at
the bottom of the delivery step's band, buyers at its top), so the book of every step
crosses as in real time, no committed position is missed (an unfilled seller or buyer
only settles its rest at the tariff) and the imbalance is 0; the model is the real-time
one without trades in the first ``k`` steps (nothing can be committed for them).

The power flow: on the tied network it is not modelled (``limits="none"``; its safety
penalty is 0 on every day, and a replay that incurred one would report it in
``safety_penalty``). On the shared IEEE-34 feeder its limits bind, so the MILP gets the AC
power flow linearised at its own plan (``powergrid.evaluation.oracle_network``; voltage,
line and PCC limits hard by default, or the env's penalty as a linear cost). The model is
then exact except for the linearisation: the check above holds for every cost term but
the safety penalty, the reported ``cost`` is the AC replay's, and ``network``
(``NetworkReport``) gives the linear model against AC — max ``|V_lin - V_ac|``, the
penalty the model predicted, the violations the replay shows.

Not representable exactly (``NotImplementedError`` naming it): custom devices, a
generator with ``p_min_kw = 0``, the consensus protocol or a custom horizontal protocol or
clearing rule, McAfee with more than two microgrids (its trade reduction drops the
marginal segment; with two it never trades, so it is the no-trade model), distributed
mode with latency or drops, price signals other than ``mode="fixed"``, set-point
tracking, env subclasses, pair fees (``PairFees``, the network-use fee) with more than
three microgrids or the continuous double auction. Pair fees otherwise are exact
(pairwise trades, ``powergrid.evaluation.oracle_pairs``). Reactive power (the config's
``reactive_power``): each inverter's Q is a column inside an inscribed polygon of its kVA
circle (``_reactive_columns``), held at 0 until the network is modelled, and replayed as
``q = Q / sqrt(s_kva^2 - P^2)``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from heron.market import ContinuousDoubleAuction, McAfee, PayAsBid, UniformPrice
from heron.protocols import P2PTradingProtocol, PriceSignalProtocol
from powergrid.devices import ESS, Generator, PowerDevice, Solar, StepContext
from powergrid.devices.inverter import q_action
from powergrid.envs.config import EnvConfig, no_trade_overrides
from powergrid.envs.multi_agent_microgrids import EPS_KWH, MultiAgentMicrogrids
from powergrid.evaluation.oracle_network import (
    LIMITS,
    MAX_LINEARISATIONS,
    FeederFlow,
    Linearisation,
    NetworkReport,
    NetworkRows,
    ac_check,
    add_network_rows,
    linearise,
    settled,
)
from powergrid.evaluation.oracle_pairs import PairMarket, add_pair_rows
from powergrid.evaluation.oracle_pairs import check_supported as check_pairs
from powergrid.evaluation.oracle_pairs import price_actions as pair_price_actions
from powergrid.network_costs import NETWORK_COST_TERMS

# clearing rules whose outcome with crossing limits is ``min(supply, demand)``
_CROSSING_RULES = (UniformPrice, PayAsBid, ContinuousDoubleAuction)
_INITIAL_TANGENTS = 16
_MAX_REFINEMENTS = 20  # LP re-solves with tangents added at the solution
_MAX_MILP_SOLVES = 3
_PF_AGREE_PU = 1e-5
_MAX_COST_ROUNDS = 6    # MILPs pricing the network costs, in a trust region (kW) around the
_TRUST_KW = 40.0        # best plan so far: starting at _TRUST_KW, halted below _TRUST_MIN_KW
_TRUST_MIN_KW = 2.0  # the oracle's and the env's AC solves of one set-point (solver tolerance)


@dataclass(frozen=True)
class OracleResult:
    """The optimum of one episode and the actions that realise it in the env.

    ``cost`` and ``cost_per_agent`` are the env's own costs ($, summed over the episode)
    of stepping ``actions`` from ``reset(seed=seed, options={"start_day": day})``;
    ``mip_objective`` is a lower bound on the env's optimum, ``gap = cost - mip_objective``.
    """

    cost: float
    cost_per_agent: dict[str, float]
    actions: list[dict[str, np.ndarray]]
    mip_objective: float
    gap: float
    status: str
    solve_time_s: float
    day: int
    seed: int
    trading: bool
    traded_kwh: float
    safety_penalty: float
    refinements: int
    cost_terms: dict[str, float] = field(default_factory=dict)
    model_cost: float = float("nan")  # the model's cost of its plan (linear network)
    network: NetworkReport | None = None  # linear model vs AC replay (non-tied networks)

    @property
    def rel_gap(self) -> float:
        return self.gap / max(abs(self.cost), 1e-12)


# ---------------------------------------------------------------------- the MILP builder
class _Milp:
    """Sparse rows and columns for ``scipy.optimize.milp``; columns are ints."""

    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.c: list[float] = []
        self.integer: list[int] = []
        self.rows: list[tuple[list[int], list[float], float, float]] = []
        self.constant = 0.0

    def var(self, lb: float = 0.0, ub: float = np.inf, cost: float = 0.0,
            integer: bool = False) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.c.append(cost)
        self.integer.append(int(integer))
        return len(self.c) - 1

    def add_cost(self, col: int, cost: float) -> None:
        self.c[col] += cost

    def row(self, terms: Sequence[tuple[int, float]], lb: float = -np.inf,
            ub: float = np.inf) -> None:
        self.rows.append(([j for j, _ in terms], [v for _, v in terms], lb, ub))

    def solve(self, rel_gap: float = 1e-6, fix: np.ndarray | None = None,
              objective: np.ndarray | None = None) -> Any:
        """Solve the MILP, or with ``fix`` (a previous solution) the LP at its integers.

        ``objective`` replaces the costs (``c``) for this solve.
        """
        n = len(self.c)
        r, cidx, vals, lo, hi = [], [], [], [], []
        for k, (cols, coefs, lb, ub) in enumerate(self.rows):
            r.extend([k] * len(cols))
            cidx.extend(cols)
            vals.extend(coefs)
            lo.append(lb)
            hi.append(ub)
        a = coo_array((vals, (r, cidx)), shape=(len(self.rows), n)).tocsr()
        integer = np.array(self.integer)
        lb, ub = np.array(self.lb), np.array(self.ub)
        if fix is not None:
            ints = integer.astype(bool)
            lb[ints] = ub[ints] = np.round(fix[ints])
            integer = np.zeros_like(integer)
        c = np.array(self.c) if objective is None else objective
        return milp(c, integrality=integer, bounds=Bounds(lb, ub),
                    constraints=LinearConstraint(a, np.array(lo), np.array(hi)),
                    options={"mip_rel_gap": rel_gap})


# ---------------------------------------------------------------------- device models
class _DeviceModel:
    """One device in the MILP: its variables, its exact cost and the inverse action map."""

    q: list[int] = []  # its inverter's reactive power per step (kvar), if it has one

    def injection(self, t: int) -> list[tuple[int, float]]:
        """Terms of the device's injection p_kw at step t."""
        raise NotImplementedError

    def tighten(self, x: np.ndarray) -> bool:
        """Make relaxed integers binary where solution ``x`` exploits them; True if any."""
        return False

    def underestimate(self, x: np.ndarray) -> float:
        """How much the MILP's cost of ``x`` under-estimates its exact cost ($, >= 0)."""
        return 0.0

    def refine(self, x: np.ndarray) -> None:
        """Add cuts at ``x`` wherever its cost is under-estimated."""

    def exact_cost(self, x: np.ndarray) -> float:
        """The env's cost of this device's part of solution ``x`` ($, whole episode)."""
        return 0.0

    def action(self, x: np.ndarray, t: int, device: PowerDevice,
               ctx: StepContext) -> list[float]:
        """Action components that make the live ``device`` follow the solution at step t."""
        raise NotImplementedError


class _GeneratorModel(_DeviceModel):
    def __init__(self, m: _Milp, device: Generator, n_steps: int, dt: float,
                 tangents: Sequence[Sequence[float]] = ()) -> None:
        p = device.params
        if p.p_min_kw <= 0.0:
            raise NotImplementedError(
                f"generator {device.name!r} has p_min_kw = 0: the env then charges a start-up "
                f"on every idle step, which the oracle does not model")
        self.m, self.params, self.dt = m, p, dt
        self.ramp = p.ramp_kw_per_h * dt
        self.su = max(p.p_min_kw, min(self.ramp, p.p_max_kw))
        self.p = [m.var(0.0, p.p_max_kw) for _ in range(n_steps)]
        self.u = [m.var(0.0, 1.0, integer=True) for _ in range(n_steps)]
        self.y = [m.var(0.0, 1.0, cost=p.startup_cost) for _ in range(n_steps)]
        self.f = [m.var(0.0, np.inf, cost=1.0) for _ in range(n_steps)]
        for t in range(n_steps):
            pt, ut, yt = self.p[t], self.u[t], self.y[t]
            m.row([(pt, 1.0), (ut, -p.p_max_kw)], ub=0.0)
            m.row([(pt, 1.0), (ut, -p.p_min_kw)], lb=0.0)
            if t == 0:  # off at reset
                m.row([(yt, 1.0), (ut, -1.0)], lb=0.0, ub=0.0)
                m.row([(pt, 1.0), (yt, -self.su)], ub=0.0)
                continue
            up, uprev, pprev = self.u[t], self.u[t - 1], self.p[t - 1]
            m.row([(yt, 1.0), (up, -1.0), (uprev, 1.0)], lb=0.0)   # y >= u_t - u_{t-1}
            m.row([(yt, 1.0), (up, -1.0)], ub=0.0)                   # y <= u_t
            m.row([(yt, 1.0), (uprev, 1.0)], ub=1.0)                 # y <= 1 - u_{t-1}
            m.row([(pt, 1.0), (pprev, -1.0), (uprev, -self.ramp), (yt, -self.su)], ub=0.0)
            m.row([(pprev, 1.0), (pt, -1.0), (up, p.p_max_kw - self.ramp)], ub=p.p_max_kw)
        for q in np.linspace(p.p_min_kw, p.p_max_kw, _INITIAL_TANGENTS if p.cost_a_per_kw2h else 1):
            for t in range(n_steps):
                self._cut(t, float(q))
        # tangents refined in an earlier solve of the same day (a network round)
        self.points: list[list[float]] = [list(tangents[t]) if tangents else []
                                          for t in range(n_steps)]
        for t, qs in enumerate(self.points):
            for q in qs:
                self._cut(t, q)

    def _cut(self, t: int, q: float) -> None:
        p, dt = self.params, self.dt
        a = p.cost_a_per_kw2h
        self.m.row([(self.f[t], 1.0), (self.p[t], -dt * (p.cost_b_per_kwh + 2 * a * q)),
                    (self.u[t], -dt * (p.cost_c_per_h - a * q * q))], lb=0.0)

    def _fuel(self, x: np.ndarray, t: int) -> float:
        p = self.params
        if x[self.u[t]] < 0.5:
            return 0.0
        q = x[self.p[t]]
        return self.dt * (p.cost_c_per_h + p.cost_b_per_kwh * q + p.cost_a_per_kw2h * q * q)

    def underestimate(self, x: np.ndarray) -> float:
        return sum(max(self._fuel(x, t) - x[self.f[t]], 0.0) for t in range(len(self.p)))

    def refine(self, x: np.ndarray) -> None:
        for t in range(len(self.p)):
            if self._fuel(x, t) - x[self.f[t]] > 1e-12:
                self._cut(t, float(x[self.p[t]]))
                self.points[t].append(float(x[self.p[t]]))

    def exact_cost(self, x: np.ndarray) -> float:
        starts = sum(round(x[y]) for y in self.y)
        return sum(self._fuel(x, t) for t in range(len(self.p))) + self.params.startup_cost * starts

    def injection(self, t: int) -> list[tuple[int, float]]:
        return [(self.p[t], 1.0)]

    def action(self, x: np.ndarray, t: int, device: PowerDevice,
               ctx: StepContext) -> list[float]:
        p = self.params
        if x[self.u[t]] < 0.5:
            return [-1.0]  # target 0 < p_min: off
        # the reachable interval from the live state, so round-off cannot leave it
        if device.on:  # type: ignore[attr-defined]
            lo = max(p.p_min_kw, device.p_kw - self.ramp)
            hi = min(p.p_max_kw, device.p_kw + self.ramp)
        else:
            lo, hi = p.p_min_kw, self.su
        want = min(max(float(x[self.p[t]]), lo), hi)
        a = min(max(2.0 * want / p.p_max_kw - 1.0, -1.0), 1.0)
        while (a + 1.0) * 0.5 * p.p_max_kw < p.p_min_kw:  # never fall below p_min by an ulp
            a = float(np.nextafter(a, 2.0))
        return [a]


class _ESSModel(_DeviceModel):
    def __init__(self, m: _Milp, device: ESS, n_steps: int, dt: float,
                 terminal_price: float) -> None:
        p = device.params
        self.params, self.dt = p, dt
        cap = p.capacity_kwh
        deg = p.degradation_cost_per_kwh * dt
        self.ch = [m.var(0.0, p.p_max_kw, cost=deg) for _ in range(n_steps)]
        self.dis = [m.var(0.0, p.p_max_kw, cost=deg) for _ in range(n_steps)]
        # the charge/discharge mode is binary only if a solution needs it (rarely: both
        # at once wastes energy and pays degradation twice)
        self.m, self.mode = m, [m.var(0.0, 1.0) for _ in range(n_steps)]
        mode = self.mode
        self.e0 = p.soc_init * cap
        self.e = [m.var(p.soc_min * cap, p.soc_max * cap) for _ in range(n_steps)]
        self.terminal_price = terminal_price
        m.add_cost(self.e[-1], -terminal_price)
        m.constant += terminal_price * self.e0
        for t in range(n_steps):
            m.row([(self.ch[t], 1.0), (mode[t], -p.p_max_kw)], ub=0.0)
            m.row([(self.dis[t], 1.0), (mode[t], p.p_max_kw)], ub=p.p_max_kw)
            terms = [(self.e[t], 1.0), (self.ch[t], -dt * p.eta_charge),
                     (self.dis[t], dt / p.eta_discharge)]
            if t == 0:
                m.row(terms, lb=self.e0, ub=self.e0)
            else:
                m.row(terms + [(self.e[t - 1], -1.0)], lb=0.0, ub=0.0)

    def injection(self, t: int) -> list[tuple[int, float]]:
        return [(self.dis[t], 1.0), (self.ch[t], -1.0)]

    def tighten(self, x: np.ndarray) -> bool:
        both = any(min(x[c], x[d]) > 1e-9 for c, d in zip(self.ch, self.dis))
        if both and not self.m.integer[self.mode[0]]:
            for j in self.mode:
                self.m.integer[j] = 1
            return True
        return False

    def exact_cost(self, x: np.ndarray) -> float:
        deg = self.params.degradation_cost_per_kwh * self.dt
        throughput = sum(abs(x[d] - x[c]) for c, d in zip(self.ch, self.dis))
        return deg * throughput + self.terminal_price * (self.e0 - x[self.e[-1]])

    def action(self, x: np.ndarray, t: int, device: PowerDevice,
               ctx: StepContext) -> list[float]:
        power = float(x[self.dis[t]] - x[self.ch[t]])
        return [min(max(power / self.params.p_max_kw, -1.0), 1.0)]


class _SolarModel(_DeviceModel):
    def __init__(self, m: _Milp, device: Solar, available_kw: Sequence[float]) -> None:
        self.pv = [m.var(0.0, float(a)) for a in available_kw]

    def injection(self, t: int) -> list[tuple[int, float]]:
        return [(self.pv[t], 1.0)]

    def action(self, x: np.ndarray, t: int, device: PowerDevice,
               ctx: StepContext) -> list[float]:
        avail = device.available(ctx.pv_per_kw)  # type: ignore[attr-defined]
        if avail <= 0.0:
            return [0.0]
        return [min(max(1.0 - float(x[self.pv[t]]) / avail, 0.0), 1.0)]


# ---------------------------------------------------------------------- the episode
@dataclass(frozen=True)
class _Tariffs:
    retail: np.ndarray   # $/kWh per step, after any fixed price signal
    feed_in: np.ndarray
    fee: float           # $/kWh of traded energy, both sides together
    trades: np.ndarray   # bool per step: the oracle lets the book cross
    pairs: PairMarket | None = None  # pair-dependent fees (powergrid.evaluation.oracle_pairs)


def _make_env(env_or_scenario: Any, trading: bool, split: str | None) -> MultiAgentMicrogrids:
    if isinstance(env_or_scenario, str):
        from powergrid import scenarios

        cfg = EnvConfig.from_dict(scenarios.get(env_or_scenario).config())
    elif isinstance(env_or_scenario, MultiAgentMicrogrids):
        if type(env_or_scenario) is not MultiAgentMicrogrids:
            raise NotImplementedError(f"env subclass {type(env_or_scenario).__name__}: the "
                                      f"oracle models MultiAgentMicrogrids only")
        cfg = env_or_scenario.config
    elif isinstance(env_or_scenario, (Mapping, EnvConfig)):
        cfg = EnvConfig.from_dict(env_or_scenario)
    else:
        raise TypeError(f"optimum() needs a MultiAgentMicrogrids env, an env config (dict or "
                        f"EnvConfig) or a scenario id, got {type(env_or_scenario).__name__}")
    cfg = cfg.replace(split=split)
    if not trading:
        cfg = cfg.replace(**no_trade_overrides())
    return MultiAgentMicrogrids(cfg)  # a fresh env: the caller's env is never stepped


def _check_supported(env: MultiAgentMicrogrids) -> None:
    cfg = env.config
    if not cfg.centralized and (cfg.latency_steps or cfg.drop_prob):
        raise NotImplementedError("distributed mode with latency_steps/drop_prob: late or "
                                  "dropped orders are not modelled by the oracle")
    proto = env.protocol
    if cfg.market_timing == "ahead" and env.vertical_protocol is not None:
        raise NotImplementedError("the ahead market with a vertical protocol: orders are "
                                  "priced on the delivery step's tariff, settled at the "
                                  "operator's, which the oracle does not model")
    if proto is not None:
        if type(proto) is not P2PTradingProtocol:
            raise NotImplementedError(f"horizontal protocol {type(proto).__name__}: the oracle "
                                      f"models P2PTradingProtocol order books only")
        rule = proto.clearing_rule
        pairs = PairMarket.of(proto, env.possible_agents)
        if pairs is not None and cfg.market_timing == "ahead":
            raise NotImplementedError("pair fees in the ahead market: the oracle models the "
                                      "ahead market's pairing with a flat fee only")
        check_pairs(pairs, rule)
        if type(rule) is McAfee:
            if len(env.possible_agents) > 2:
                raise NotImplementedError(
                    f"McAfee clearing with {len(env.possible_agents)} microgrids: trade "
                    f"reduction drops the marginal segment, which the oracle does not model")
        elif type(rule) not in _CROSSING_RULES:
            raise NotImplementedError(f"clearing rule {type(rule).__name__}: the oracle models "
                                      f"uniform, pay_as_bid, cda and mcafee (2 microgrids)")
    vp = env.vertical_protocol
    if vp is not None and not (type(vp) is PriceSignalProtocol and vp.mode == "fixed"):
        what = f"{type(vp).__name__}" + (f"(mode={vp.mode!r})" if hasattr(vp, "mode") else "")
        raise NotImplementedError(f"vertical protocol {what}: the oracle models no vertical "
                                  f"protocol or PriceSignalProtocol(mode='fixed') only")


def _tariffs(env: MultiAgentMicrogrids, n_steps: int) -> _Tariffs:
    s = env.series
    retail = np.array(s.retail[:n_steps], float)
    feed_in = np.array(s.feed_in[:n_steps], float)
    vp = env.vertical_protocol
    if vp is not None:  # fixed price signal: the operator's price replaces the tariff
        ratio = np.where(retail > 0, feed_in / np.where(retail > 0, retail, 1.0), 0.0)
        retail = np.array([vp.base_at(int(h)) for h in s.hours[:n_steps]], float)
        feed_in = retail * ratio
    proto = env.protocol
    if proto is None or type(proto.clearing_rule) is McAfee:
        return _Tariffs(retail, feed_in, 0.0, np.zeros(n_steps, bool))
    fee = proto.trading_fee
    # spread < fee: the env's fee-adjusted band is empty and nobody posts an order; spread
    # == fee: every limit is the same price, orders cross and trade at zero net gain
    trades = retail - feed_in > fee
    if env.config.market_timing == "ahead":  # nothing is committed for the first k steps
        trades[:env.config.gate_lead_steps] = False
    return _Tariffs(retail, feed_in, fee, trades, PairMarket.of(proto, env.possible_agents))


def _device_models(m: _Milp, env: MultiAgentMicrogrids, n_steps: int, dt: float,
                   terminal_price: float,
                   tangents: dict[tuple[str, str], list[list[float]]] | None = None
                   ) -> dict[str, list[_DeviceModel]]:
    pv = env.series.pv_per_kw[:n_steps]
    out: dict[str, list[_DeviceModel]] = {}
    for a in env.possible_agents:
        models: list[_DeviceModel] = []
        for d in env.devices(a):
            if type(d) is Generator:
                models.append(_GeneratorModel(m, d, n_steps, dt,
                                              (tangents or {}).get((a, d.name), ())))
            elif type(d) is ESS:
                models.append(_ESSModel(m, d, n_steps, dt, terminal_price))
            elif type(d) is Solar:
                models.append(_SolarModel(m, d, [d.available(float(v)) for v in pv]))
            else:
                raise NotImplementedError(
                    f"device {d.name!r} of microgrid {a!r} is a {type(d).__name__}; the "
                    f"oracle models Generator, ESS and Solar only")
            if getattr(d, "reactive", False):
                _reactive_columns(m, models[-1], float(d.s_kva), n_steps)
        out[a] = models
    return out


_KVA_SIDES = 16  # the inverter's kVA circle as an inscribed polygon of this many sides


def _hold_reactive(m: _Milp, models: dict[str, list[_DeviceModel]]) -> None:
    """Every inverter's Q at 0 (a plan without a network model has no use for it)."""
    for dm in (dm for ms in models.values() for dm in ms):
        for j in dm.q:
            m.lb[j] = m.ub[j] = 0.0


def _reactive_columns(m: _Milp, dm: _DeviceModel, s_kva: float, n_steps: int) -> None:
    """The inverter's reactive power Q_t (kvar, + injects) inside its kVA circle.

    An inscribed regular polygon (vertices on the circle, one at (s_kva, 0)), so every
    planned (P, Q) lies inside the circle and the replay's ``q = Q / sqrt(s_kva^2 - P^2)``
    is within [-1, 1]; it gives up at most ``1 - cos(pi / 16)`` (2 %) of the rating.
    """
    dm.q = [m.var(-s_kva, s_kva) for _ in range(n_steps)]
    reach = s_kva * np.cos(np.pi / _KVA_SIDES)
    for t in range(n_steps):
        for k in range(_KVA_SIDES):
            angle = (2 * k + 1) * np.pi / _KVA_SIDES
            c, sn = float(np.cos(angle)), float(np.sin(angle))
            m.row([(j, c * v) for j, v in dm.injection(t)] + [(dm.q[t], sn)], ub=reach)


def _market(m: _Milp, env: MultiAgentMicrogrids, models: dict[str, list[_DeviceModel]],
            tariffs: _Tariffs, n_steps: int, dt: float) -> list[int | None]:
    """Net positions, grid settlement and the traded volume; returns V's column per step."""
    load = env.series.load_kw
    volume: list[int | None] = []
    for t in range(n_steps):
        r, f = float(tariffs.retail[t]), float(tariffs.feed_in[t])
        surplus, deficit, big = [], [], []
        for i, a in enumerate(env.possible_agents):
            s = m.var(cost=-f * dt)
            g = m.var(cost=r * dt)
            inj = [term for dm in models[a] for term in dm.injection(t)]
            m.row(inj + [(s, -1.0), (g, 1.0)], lb=float(load[t, i]), ub=float(load[t, i]))
            surplus.append(s)
            deficit.append(g)
            big.append(float(load[t, i]) + sum(max(abs(m.lb[j]), abs(m.ub[j])) * abs(c)
                                               for j, c in inj) + 1.0)
        if tariffs.pairs is not None:  # who trades with whom matters: pairwise trades
            add_pair_rows(m, tariffs.pairs, surplus, deficit, big, r, f, dt)
            volume.append(None)
            continue
        if not tariffs.trades[t]:
            volume.append(None)
            continue
        v = m.var(cost=-(r - f - tariffs.fee))  # each traded kWh avoids import and export
        m.row([(v, 1.0)] + [(s, -dt) for s in surplus], ub=0.0)
        m.row([(v, 1.0)] + [(g, -dt) for g in deficit], ub=0.0)
        volume.append(v)
    return volume


def optimum(env_or_scenario: Any, day: int, *, seed: int = 0, trading: bool = True,
            split: str | None = None, rel_gap: float = 1e-6,
            limits: str | None = None, network_costs: bool | None = None) -> OracleResult:
    """Perfect-foresight optimum of the episode starting on ``day`` with ``seed``.

    ``env_or_scenario``: a ``MultiAgentMicrogrids`` (only its config is used), an env
    config (dict / ``EnvConfig``) or a scenario id. ``trading=False`` gives the no-trade
    optimum (``horizontal_protocol=None``). ``split`` replaces the config's split (None:
    any day of the year; "test": ``day`` must be a held-out day, else ``ValueError``); the
    replay is ``reset(seed=seed, options={"start_day": day, "split": split})``.
    ``limits``: the network model (``powergrid.evaluation.oracle_network``): ``"hard"``
    (every voltage and loading limit a constraint; the default on ``network="ieee34"``),
    ``"penalty"`` (the env's safety penalty as a linear cost) or ``"none"`` (network-blind;
    the default on ``"tied"``, whose limits never bind). ``network_costs``: optimise the
    env's network costs (allocated losses, shared-network violations; default: when the
    config charges them); False leaves them to the replay (they are still in ``cost``).
    """
    env = _make_env(env_or_scenario, trading, split)
    n_days = env.profiles.n_days
    if isinstance(day, bool) or not isinstance(day, (int, np.integer)) or not 0 <= day < n_days:
        raise ValueError(f"day must be an int day of year in [0, {n_days - 1}], got {day!r}")
    if limits is None:
        limits = "none" if env.config.network == "tied" else "hard"
    if limits not in LIMITS:
        raise ValueError(f"limits must be one of {LIMITS}, got {limits!r}")
    if network_costs is None:
        network_costs = env.config.network_costs
    if not isinstance(network_costs, bool) or (network_costs and not env.config.network_costs):
        raise ValueError(f"network_costs must be None, False or (when the config has "
                         f"network_costs=True) True, got {network_costs!r}")
    _check_supported(env)
    t0 = time.perf_counter()
    env.reset(seed=seed, options={"start_day": int(day)})  # ValueError if not in the split
    cfg = env.config
    n_steps, dt = cfg.max_episode_steps, cfg.dt_hours
    tariffs = _tariffs(env, n_steps)
    loss_price = None
    if network_costs:  # the env prices allocated losses at loss_price, else the retail price
        loss_price = (tariffs.retail if cfg.loss_price is None
                      else np.full(n_steps, float(cfg.loss_price)))
    flow = (FeederFlow(env) if cfg.network != "tied" or limits != "none" or network_costs
            else None)

    lin: Linearisation | None = None
    rounds, elastic = 0, False
    trust: float | None = None  # kW around the best plan, once network costs are priced
    tangents: dict[tuple[str, str], list[list[float]]] = {}
    plans: list[_Round] = []
    while True:  # sequential linearisation of the network at the plan (none: one pass)
        m = _Milp()
        models = _device_models(m, env, n_steps, dt, float(cfg.storage_terminal_price),
                                tangents)
        volume = _market(m, env, models, tariffs, n_steps, dt)
        inj = _injections(models, n_steps)
        rows = (add_network_rows(m, inj, _ranges(m, inj), lin, flow, env.microgrid_agents,
                                 cfg, limits, elastic) if lin is not None
                else NetworkRows())
        if lin is None:  # no network model yet: reactive power would be arbitrary, hold it
            _hold_reactive(m, models)
        if trust is not None:
            _trust_region(m, inj, lin.p0, trust)
        try:
            x, lower, refinements, status = _solve(m, models, rows, rel_gap, int(day))
        except _Infeasible:
            if elastic or lin is None:
                raise RuntimeError(f"oracle MILP for day {day} is infeasible") from None
            elastic = True  # no plan meets every limit in the linear model: price them
            continue
        tangents = {(a, d.name): dm.points for a in env.possible_agents
                    for d, dm in zip(env.devices(a), models[a])
                    if isinstance(dm, _GeneratorModel)}
        if flow is None:
            plans.append(_Round(m, models, rows, volume, x, lower, refinements, status, lin))
            break
        if lin is not None:
            x = _closest(m, models, rows, x, inj, lin.p0)
        plan = _plan(x, inj)
        ac = ac_check(flow, lin, plan, cfg, loss_price)
        best_before = _best_round(plans, limits) if plans else None
        plans.append(_Round(m, models, rows, volume, x, lower, refinements, status, lin, ac,
                            plan))
        if rounds >= MAX_LINEARISATIONS + (_MAX_COST_ROUNDS if network_costs else 0):
            break
        if trust is None:  # limits alone (the network-cost-blind plan is a candidate)
            if limits == "none" and not network_costs:
                break
            if not settled(limits, ac, rows.penalty(x), rows.violation(x)):
                if rounds < MAX_LINEARISATIONS:
                    lin, rounds = linearise(flow, plan, cfg), rounds + 1
                    continue
            if not network_costs:
                break
            trust = _TRUST_KW
        else:  # a trust region: grow it after a better plan, shrink it after a worse one
            better = _best_round(plans, limits) is not best_before
            trust = trust * 2.0 if better else trust / 4.0
            if trust < _TRUST_MIN_KW:
                break
        best = _best_round(plans, limits)
        if best.lin is None or best.lin.charges is None or best is not best_before:
            lin = linearise(flow, best.plan, cfg, loss_price)  # the network costs' tangent
        rounds += 1
    solve_time = time.perf_counter() - t0
    best = _best_round(plans, limits)
    rounds = plans.index(best)  # the linearisations its model was built on
    m, models, rows, volume, x, lower, refinements, status, lin = (
        best.m, best.models, best.rows, best.volume, best.x, best.lower, best.refinements,
        best.status, best.lin)

    base_cost = _model_cost(x, m, models, rows.columns())  # devices and market, exact
    model_penalty, model_network = rows.penalty(x), rows.network_cost(x)
    model_cost = base_cost + model_penalty + model_network
    actions, cost_per_agent, terms, traded, safety, replayed, monitor = _replay(
        env, x, models, tariffs, volume, seed, int(day))
    cost = float(sum(cost_per_agent.values()))
    # the network's terms are linear models of the AC env's (the replay's are reported)
    replay_network = sum(terms.get(k, 0.0) for k in NETWORK_COST_TERMS)
    unmodelled = safety + replay_network
    if abs((cost - unmodelled) - base_cost) > 1e-6 * max(1.0, abs(cost)):
        raise RuntimeError(f"oracle model disagrees with the env on day {day}: model cost "
                           f"{base_cost:.9f} $, env replay "
                           f"{cost - unmodelled:.9f} $ without safety penalties and network "
                           f"costs (the env's "
                           f"physics, market or reward changed; extend "
                           f"powergrid/evaluation/oracle.py)")
    network = None
    if flow is not None:
        network = _network_report(flow, lin, replayed, monitor, cfg, limits, rounds,
                                  model_penalty, rows.violation(x), int(day),
                                  model_network, replay_network)
    return OracleResult(cost=cost, cost_per_agent=cost_per_agent, actions=actions,
                        mip_objective=float(lower), gap=cost - float(lower),
                        status=status, solve_time_s=solve_time, day=int(day),
                        seed=seed, trading=env.protocol is not None, traded_kwh=traded,
                        safety_penalty=safety, refinements=refinements, cost_terms=terms,
                        model_cost=model_cost, network=network)


@dataclass(frozen=True)
class _Round:
    """One MILP of the sequential linearisation, its solution and that plan's AC check."""

    m: _Milp
    models: dict[str, list[_DeviceModel]]
    rows: NetworkRows
    volume: list[int | None]
    x: np.ndarray
    lower: float
    refinements: int
    status: str
    lin: Linearisation | None
    ac: dict[str, Any] | None = None
    plan: np.ndarray | None = None  # every device's kW, (T, n_dev)

    def ac_cost(self) -> float:
        """The env's cost of this plan: devices and market exact, network terms in AC."""
        assert self.ac is not None
        return (_model_cost(self.x, self.m, self.models, self.rows.columns())
                + float(self.ac["penalty"]) + float(self.ac["network_cost"]))


def _best_round(plans: list[_Round], limits: str) -> _Round:
    """The cheapest plan in the AC env among those its limits admit (else the last).

    Why: each round's plan is optimal for the network linearised at the previous one, not
    for the AC network, so a later round is not always cheaper in the env; every plan's AC
    state is known (``ac_check``), so the oracle returns the best. Admitted: a converged
    power flow on every step and, with ``limits="hard"``, every limit met.
    """
    if plans[-1].ac is None:
        return plans[-1]

    def admitted(r: _Round) -> bool:
        ok = bool(np.all(r.ac["converged"]))
        return ok and (limits != "hard" or float(r.ac["excess"]) == 0.0)

    ok = [r for r in plans if admitted(r)]
    return min(ok, key=_Round.ac_cost) if ok else plans[-1]


def replay_cost(env_or_scenario: Any, result: OracleResult) -> float:
    """The env's total cost ($) of stepping ``result.actions`` from the result's reset.

    Recomputes ``result.cost`` independently of the oracle (in a fresh env of the same
    config, without a market if ``result.trading`` is False): tests and benchmarks check
    the two agree.
    """
    env = _make_env(env_or_scenario, result.trading, None)
    env.reset(seed=result.seed, options={"start_day": result.day})
    total = 0.0
    for step in result.actions:
        _, rewards, _, _, _ = env.step(step)
        total -= sum(rewards.values())
    return total


class _Infeasible(Exception):
    """The MILP has no solution (only hard network limits can make it so)."""


def _solve(m: _Milp, models: dict[str, list[_DeviceModel]], rows: NetworkRows,
           rel_gap: float, day: int) -> tuple[np.ndarray, float, int, str]:
    """Branch and bound with tangent refinement; returns (x, lower bound, refinements, status)."""
    all_models = [dm for ms in models.values() for dm in ms]
    excluded = rows.columns()
    lower, upper, x, refinements, status = -np.inf, np.inf, None, 0, ""
    solves = 0
    while solves < _MAX_MILP_SOLVES or x is None:
        res = m.solve(rel_gap=0.1 * rel_gap)
        if res.status == 2:
            raise _Infeasible(str(res.message))
        if res.x is None:
            raise RuntimeError(f"oracle MILP for day {day} failed: {res.message}")
        status = str(res.message)
        if any([dm.tighten(res.x) for dm in all_models]):
            continue  # finitely often: each ESS's modes become binary once
        solves += 1
        bound = getattr(res, "mip_dual_bound", None)
        lower = max(lower, (res.fun if bound is None or not np.isfinite(bound) else bound)
                    + m.constant)
        # tangents at the solution (LPs at its commitment) until the fuel cost is exact
        cand = res.x
        budget = 0.5 * rel_gap * max(1.0, abs(res.fun + m.constant))
        for _ in range(_MAX_REFINEMENTS):
            if sum(dm.underestimate(cand) for dm in all_models) <= budget:
                break
            for dm in all_models:
                dm.refine(cand)
            refinements += 1
            cand = m.solve(fix=res.x).x
        if any([dm.tighten(cand) for dm in all_models]):
            continue
        # the objective as the MILP prices it, fuel exact (elastic slacks at their price)
        cost = (_model_cost(cand, m, models, excluded)
                + float(sum(m.c[j] * cand[j] for j in excluded)))
        if cost < upper:
            x, upper = cand, cost
        if upper - lower <= rel_gap * max(1.0, abs(upper)):
            break  # else: re-solve the MILP with the new tangents for a tighter bound
    assert x is not None
    return x, float(lower), refinements, status


def _trust_region(m: _Milp, inj: list[list[list[tuple[int, float]]]], p0: np.ndarray,
                  trust_kw: float) -> None:
    """Every device within ``trust_kw`` of its set-point in ``p0`` (T, n_dev), every step.

    Why: the network costs' tangent (a ratio of marginal charges) holds only near its base
    point; a plan far from it is priced wrongly, so each priced round moves at most this
    far from the best plan so far (a trust region, grown or shrunk by the AC replay).
    """
    for t, step in enumerate(inj):
        for k, terms in enumerate(step):
            m.row(terms, lb=float(p0[t, k]) - trust_kw, ub=float(p0[t, k]) + trust_kw)


def _closest(m: _Milp, models: dict[str, list[_DeviceModel]], rows: NetworkRows,
             x: np.ndarray, inj: list[list[list[tuple[int, float]]]], p0: np.ndarray
             ) -> np.ndarray:
    """Among the plans as cheap as ``x`` (at its integers), the one nearest the base point.

    Why: the optimum is rarely unique (a battery can shift energy between hours of equal
    price), and a plan far from the linearisation point is where the linear network model
    errs most; this LP picks, at the same cost (within 1e-7 relative), the plan with the
    least L1 distance to ``p0``, so sequential linearisation settles. Generators keep
    their output (strictly convex fuel: rarely degenerate, and the tangents would under-
    price a moved one). Cost is unchanged: if the nearest plan's exact cost is higher,
    ``x`` is kept.
    """
    def priced(sol: np.ndarray) -> float:
        return (_model_cost(sol, m, models, rows.columns())
                + float(sum(m.c[j] * sol[j] for j in rows.columns())))

    best = priced(x)
    tol = 1e-7 * max(1.0, abs(best))
    c = np.array(m.c)
    m.row([(j, v) for j, v in enumerate(c) if v], ub=float(c @ x) + tol)
    for dm in (dm for ms in models.values() for dm in ms):
        if isinstance(dm, _GeneratorModel):  # its fuel cost is convex: keep its output,
            for j in dm.p:                   # so the tangents price the plan exactly
                m.row([(j, 1.0)], lb=float(x[j]), ub=float(x[j]))
    dist = []
    for t, step in enumerate(inj):
        for k, terms in enumerate(step):
            d = m.var()
            m.row(terms + [(d, -1.0)], ub=float(p0[t, k]))
            m.row(terms + [(d, 1.0)], lb=float(p0[t, k]))
            dist.append(d)
    objective = np.zeros(len(m.c))
    objective[dist] = 1.0
    res = m.solve(fix=np.concatenate([x, np.zeros(len(m.c) - len(x))]), objective=objective)
    if res.x is None or priced(res.x) > best + 2.0 * tol:  # the row allows tol (+ round-off)
        return np.concatenate([x, np.zeros(len(m.c) - len(x))])
    return res.x


def _injections(models: dict[str, list[_DeviceModel]], n_steps: int
                ) -> list[list[list[tuple[int, float]]]]:
    """MILP terms of every device's kW, [step][device], devices in agent then env order,
    then of every inverter's kvar (reactive power on), in the same order."""
    flat = [dm for ms in models.values() for dm in ms]
    return [[dm.injection(t) for dm in flat] + [[(dm.q[t], 1.0)] for dm in flat if dm.q]
            for t in range(n_steps)]


def _ranges(m: _Milp, inj: list[list[list[tuple[int, float]]]]) -> np.ndarray:
    """Each device's [min, max] kW per step from its columns' bounds, (T, n_dev, 2)."""
    lb, ub = np.array(m.lb), np.array(m.ub)
    out = np.zeros((len(inj), len(inj[0]), 2))
    for t, step in enumerate(inj):
        for k, terms in enumerate(step):
            for j, c in terms:
                out[t, k, 0] += min(c * lb[j], c * ub[j])
                out[t, k, 1] += max(c * lb[j], c * ub[j])
    return out


def _plan(x: np.ndarray, inj: list[list[list[tuple[int, float]]]]) -> np.ndarray:
    """Every device's kW in solution ``x``, (T, n_dev)."""
    return np.array([[sum(c * x[j] for j, c in terms) for terms in step] for step in inj])


def _network_report(flow: FeederFlow, lin: Linearisation | None, replayed: np.ndarray,
                    monitor: list[dict[str, tuple[bool, float, float]]], cfg: EnvConfig,
                    limits: str, rounds: int, model_penalty: float, model_violation: float,
                    day: int, model_network: float = 0.0,
                    replay_network: float = 0.0) -> NetworkReport:
    """AC state of the replayed set-points against the linear model's.

    The oracle's own power flow of the replay must show the env's voltages (else the
    env's power-flow inputs changed and the linear model describes another network).
    """
    ac = ac_check(flow, lin, replayed, cfg)
    vm = ac["vm"]
    for t, step in enumerate(monitor):
        for a, (ok, v_min, v_max) in step.items():
            if not ok:
                continue
            v = vm[t, flow.mg_buses[a]]
            if max(abs(v.min() - v_min), abs(v.max() - v_max)) > _PF_AGREE_PU:
                raise RuntimeError(
                    f"oracle's power flow disagrees with the env on day {day}, step {t}, "
                    f"{a}: voltages {v.min():.6f}-{v.max():.6f} pu vs the env's "
                    f"{v_min:.6f}-{v_max:.6f} (the env's power-flow inputs changed; extend "
                    f"powergrid/evaluation/oracle_network.py)")
    return NetworkReport(
        limits=limits, linearisations=rounds, v_error_max_pu=float(ac["v_error_max_pu"]),
        loading_error_max_pct=float(ac["loading_error_max_pct"]),
        model_penalty=model_penalty, model_violation=model_violation,
        violation_steps=int(ac["violation_steps"]), violations=dict(ac["violations"]),
        v_range_pu=tuple(ac["v_range_pu"]),
        line_loading_max_pct=float(ac["line_loading_max_pct"]),
        pcc_loading_max_pct=float(ac["pcc_loading_max_pct"]),
        model_network_cost=model_network, network_cost=replay_network)


def _model_cost(x: np.ndarray, m: _Milp, models: dict[str, list[_DeviceModel]],
                excluded: set[int] = frozenset()) -> float:  # type: ignore[assignment]
    """Devices and market of solution ``x``, device costs exact (fuel not by tangents).

    ``excluded`` columns (the network's slacks) are left out.
    """
    device_cols = set(excluded)
    for ms in models.values():
        for dm in ms:
            for name in ("p", "u", "y", "f", "ch", "dis", "e"):
                device_cols.update(getattr(dm, name, ()))
    c = np.array(m.c)
    market = sum(c[j] * x[j] for j in range(len(c)) if j not in device_cols)
    devices = sum(dm.exact_cost(x) for ms in models.values() for dm in ms)
    return float(market + devices)


def _limit(net_kwh: float, cross: bool) -> float:
    """Price action of an order of ``net_kwh``: sellers at the bottom of the band and buyers
    at its top when the book is to cross (else the other way round)."""
    if abs(net_kwh) <= EPS_KWH:
        return 0.0  # no order
    if net_kwh > 0:
        return -1.0 if cross else 1.0
    return 1.0 if cross else -1.0


@dataclass(frozen=True)
class _AheadReplay:
    """The ahead market's actions of a plan: commit each step's planned net position."""

    net_kwh: np.ndarray   # (T, N) planned net export per step
    max_kwh: np.ndarray   # (N,) kWh of quantity action 1
    lead: int
    levels: int

    @classmethod
    def build(cls, env: MultiAgentMicrogrids, x: np.ndarray,
              models: dict[str, list[_DeviceModel]]) -> _AheadReplay:
        from powergrid.core.ahead import max_commit_kwh

        cfg, s = env.config, env.series
        T, dt = cfg.max_episode_steps, cfg.dt_hours
        net = np.array([[sum(c * x[j] for dm in models[a] for j, c in dm.injection(t))
                         - float(s.load_kw[t, i]) for i, a in enumerate(env.possible_agents)]
                        for t in range(T)]) * dt
        return cls(net, np.array([max_commit_kwh(m, dt) for m in cfg.microgrids]),
                   cfg.gate_lead_steps, cfg.bid_curve_points)

    def market(self, i: int, t: int, tariffs: _Tariffs) -> list[float]:
        """``[quantity, price x levels]`` of microgrid ``i`` at step ``t``."""
        d = t + self.lead
        if d >= len(self.net_kwh):
            return [0.0] * (1 + self.levels)
        net = float(self.net_kwh[d, i])
        q = net / self.max_kwh[i] if abs(net) > EPS_KWH else 0.0
        return [q] + [_limit(net, bool(tariffs.trades[d]))] * self.levels


def _replay(env: MultiAgentMicrogrids, x: np.ndarray, models: dict[str, list[_DeviceModel]],
            tariffs: _Tariffs, volume: list[int | None], seed: int, day: int):
    """Step the inverse-mapped actions in ``env``; returns them with the env's costs."""
    env.reset(seed=seed, options={"start_day": day})
    s, dt = env.series, env.config.dt_hours
    cost = dict.fromkeys(env.possible_agents, 0.0)
    terms: dict[str, float] = {}
    actions: list[dict[str, np.ndarray]] = []
    traded = safety = 0.0
    ahead = _AheadReplay.build(env, x, models) if env.config.market_timing == "ahead" else None
    replayed: list[list[float]] = []  # every device's kW as the env set it
    monitor: list[dict[str, tuple[bool, float, float]]] = []  # the env's own voltages
    for t in range(env.config.max_episode_steps):
        ctx = StepContext(hour=int(s.hours[t]), dt_hours=dt, pv_per_kw=float(s.pv_per_kw[t]))
        load = s.load_kw[t].tolist()
        comps: dict[str, list[float]] = {}
        nets: list[float] = []
        for i, a in enumerate(env.possible_agents):
            out = 0.0
            comps[a] = []
            for d, dm in zip(env.devices(a), models[a]):
                act = dm.action(x, t, d, ctx)
                # the side of this order (and the active power the inverter's q divides)
                p_kw = copy.deepcopy(d).step(np.array(act + [0.0] * bool(dm.q)), ctx)
                if dm.q:
                    act = act + [q_action(float(d.s_kva), p_kw, float(x[dm.q[t]]))]
                comps[a].extend(act)
                out += p_kw
            nets.append((out - load[i]) * dt)
        if ahead is not None:  # commit the plan's net position of step t + k now
            step = {a: np.array(comps[a] + ahead.market(i, t, tariffs))
                    for i, a in enumerate(env.possible_agents)}
        elif tariffs.pairs is not None:
            prices = pair_price_actions(tariffs.pairs, nets, float(tariffs.retail[t]),
                                        float(tariffs.feed_in[t]), EPS_KWH)
            step = {a: np.array(comps[a] + [0.0 if abs(v) <= EPS_KWH else p])  # 0: no order
                    for a, v, p in zip(env.possible_agents, nets, prices)}
        else:
            step = {a: np.array(comps[a] + [_limit(v, bool(tariffs.trades[t]))])
                    for a, v in zip(env.possible_agents, nets)}
        actions.append(step)
        _, _, _, _, infos = env.step(step)
        for a in env.possible_agents:
            costs = infos[a]["costs"]
            cost[a] += costs["total"]
            safety += costs.get("safety_penalty", 0.0)
            for k, v in costs.items():
                if k != "total":
                    terms[k] = terms.get(k, 0.0) + v
        traded += infos[env.possible_agents[0]]["market"]["volume_kwh"]
        devices = [d for a in env.possible_agents for d in env.devices(a)]
        replayed.append([d.p_kw for d in devices]
                        + [d.q_kvar for d in devices if getattr(d, "reactive", False)])
        monitor.append({a: (i["pf_converged"], i["v_min_pu"], i["v_max_pu"])
                        for a, i in infos.items()})
    return actions, cost, terms, traded, safety, np.array(replayed), monitor
