"""The oracle's network model: AC power flow linearised at the plan, limits as MILP rows.

Why linear and not LinDistFlow: the env's feeder (IEEE-13 microgrids under PCC
transformers on the IEEE-34 feeder, with its lines' R/X, taps and shunts) is solved by the
env's own AC solver, and a first-order model of *that* solver is what the replay will be
judged by. So for every step t the oracle solves the AC power flow at a base set-point
``p0_t`` (every device's kW) and by central finite differences (±``_H_KW``) gets the
sensitivities of every bus voltage magnitude, line loading and PCC transformer loading
to every device's active injection:

    y_t(p) ~= y_t(p0_t) + J_t (p - p0_t),     J_t = dy/dp at p0_t (AC, exact to O(h^2))

Loads, the feeder's own loads and everything reactive stay at their series values (the
env gives devices no Q set-point today). The first base point is the network-blind
optimum; the MILP is then re-solved with the rows linearised at its own previous solution
(sequential linear programming) until ``max |V_lin - V_ac|`` at the solution is below
``_V_TOL_PU`` or ``_MAX_LINEARISATIONS`` rounds are done; the last round is returned.

Limits (``limits=``):

* ``"penalty"``: the env's safety penalty as linear costs with slacks, priced exactly as
  the env charges it: ``voltage_penalty_per_pu`` per pu outside ``voltage_band`` summed
  over each microgrid's own buses, ``line_overload_penalty_per_pct`` per % above 100 over
  its own lines, per step. The optimum trades penalty against cost like the env does;
  limits the env does not charge (IEEE-34 buses and lines, PCC transformers) are free.
* ``"hard"``: every limit — microgrid and IEEE-34 bus voltages within ``voltage_band``
  (tightened by ``_MARGIN_PU``), microgrid and IEEE-34 lines and PCC transformers at most
  100 % (less ``_MARGIN_PCT``) — is a constraint. Should no plan meet every limit (in the
  linear model), the day is solved again with an elastic slack on each, priced at
  ``_HARD_PER_PU`` / ``_HARD_PER_PCT``, and the slack used is reported
  (``model_violation``); the env-charged terms then keep their env price on top, so the
  model's cost stays the env's.
* ``"none"``: no network rows (the network-blind optimum).

Rows are only written for quantities the linear model lets reach a limit on that step
(``y0 + sum_k max(J_k dp_k)`` over the devices' power ranges), so a healthy bus costs
nothing. The linearisation is the only approximation: the replay in the AC env is the
reported cost, and the gap (voltage error, cost of the model vs the replay) is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from powergrid.pf import make_solver

_H_KW = 1.0                # finite-difference step, kW
_V_TOL_PU = 1e-4           # stop linearising once the model's voltages are this close to AC
_MAX_LINEARISATIONS = 4
_MARGIN_PU = 1e-3          # hard limits: inside the band by this much (linearisation error)
_MARGIN_PCT = 0.5          # hard limits: loadings at most 100 - this
_HARD_PER_PU = 1e5         # $/pu-step of an elastic slack on a hard voltage limit
_HARD_PER_PCT = 1e3        # $/%-step of an elastic slack on a hard loading limit
_NEAR_LIMIT_PCT = 50.0    # loading errors are reported where model or AC reach this
LIMITS = ("hard", "penalty", "none")


# ---------------------------------------------------------------------- the AC inputs
class FeederFlow:
    """The env's power-flow inputs, rebuilt from its public attributes, and batched solves.

    Device set-points are an array (..., n_devices) in kW, devices in agent then device
    order; loads come from the episode's series exactly as the env sets them. The replay
    checks the result against the env's own infos, so a change of the env's inputs fails
    loudly instead of skewing the model.
    """

    def __init__(self, env) -> None:
        nw = env.network
        self.network = nw
        self.solver = make_solver(nw.net, env.config.power_flow)
        agents = env.possible_agents
        owner = np.zeros(len(nw.load_share), dtype=np.intp)
        for i, a in enumerate(agents):
            owner[nw.load_rows[a]] = i
        self._owner, self._share_mw, self._q_ratio = owner, nw.load_share * 1e-3, nw.load_q_ratio
        self._feeder_rows = nw.feeder_load_rows
        self._feeder_mw = nw.net.load["p_mw"].to_numpy(float)[nw.feeder_load_rows]
        s = env.series
        self._feeder_pu = env.profiles.load("residential")[s.days, s.hours]
        self._load_kw = np.asarray(s.load_kw, float)
        self.devices: list[tuple[str, str, str, int]] = []  # agent, device, element, row
        owners = []
        for i, a in enumerate(agents):
            for d in env.devices(a):
                element, row = nw.device_rows[(a, d.name)]
                self.devices.append((a, d.name, element, row))
                owners.append(i)
        self.device_owner = np.array(owners, dtype=np.intp)
        self.load_kw = self._load_kw
        self.n_sgen, self.n_storage = len(nw.net.sgen), len(nw.net.storage)
        # the quantities the oracle limits, as index arrays into the PF result
        self.mg_buses = {a: np.asarray(nw.bus_rows[a]) for a in agents}
        self.mg_lines = {a: np.asarray(nw.line_rows[a]) for a in agents}
        mg_line_set = set(np.concatenate(list(self.mg_lines.values())).tolist())
        self.feeder_buses = np.asarray(nw.feeder_bus_rows)
        self.feeder_lines = np.array([k for k in range(len(nw.net.line))
                                      if k not in mg_line_set], dtype=np.intp)
        self.pcc = np.array([nw.pcc_trafo_rows[a] for a in agents], dtype=np.intp)

    def solve(self, steps: np.ndarray, p_kw: np.ndarray):
        """AC power flow of steps ``steps`` (B,) at device set-points ``p_kw`` (B, n_dev)."""
        steps = np.asarray(steps, dtype=np.intp)
        load_p = self._load_kw[steps][:, self._owner] * self._share_mw
        if len(self._feeder_rows):
            load_p[:, self._feeder_rows] = self._feeder_mw * self._feeder_pu[steps][:, None]
        sgen = np.zeros((len(steps), self.n_sgen))
        storage = np.zeros((len(steps), self.n_storage))
        for k, (_, _, element, row) in enumerate(self.devices):
            if element == "storage":
                storage[:, row] = -p_kw[:, k] * 1e-3  # pandapower storage: + = charging
            else:
                sgen[:, row] = p_kw[:, k] * 1e-3
        self.solver.reset()
        return self.solver.solve(load_p, load_p * self._q_ratio, sgen, storage)


# ---------------------------------------------------------------------- linearisation
@dataclass(frozen=True)
class Linearisation:
    """Per step: base set-points and the AC state there, with its sensitivities."""

    p0: np.ndarray      # (T, n_dev) kW
    vm0: np.ndarray     # (T, n_bus) pu
    line0: np.ndarray   # (T, n_line) %, signed by the base point's flow (``linearise``)
    pcc0: np.ndarray    # (T, n_mg) %, signed
    d_vm: np.ndarray    # (T, n_bus, n_dev) pu per kW
    d_line: np.ndarray  # (T, n_line, n_dev) % per kW
    d_pcc: np.ndarray   # (T, n_mg, n_dev) % per kW
    converged: np.ndarray  # (T,) the base point's power flow converged

    def vm(self, p: np.ndarray) -> np.ndarray:
        """Linear-model voltages (T, n_bus) at set-points ``p`` (T, n_dev)."""
        return self.vm0 + np.einsum("tbk,tk->tb", self.d_vm, p - self.p0)

    def loadings(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Linear-model line and PCC loadings (%, unsigned) at set-points ``p``."""
        dp = p - self.p0
        return (np.abs(self.line0 + np.einsum("tlk,tk->tl", self.d_line, dp)),
                np.abs(self.pcc0 + np.einsum("tlk,tk->tl", self.d_pcc, dp)))


def _loadings(flow: FeederFlow, res, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line loadings, PCC loadings (%) and line active flows (MW) of a batch, (n, ...)."""
    line = np.asarray(res.line_loading_percent, float).reshape(n, -1)
    p_from = np.asarray(res.line_p_from_mw, float).reshape(n, -1)
    trafo = np.asarray(res.trafo_loading_percent, float).reshape(n, -1)
    return line, trafo[:, flow.pcc], p_from


def linearise(flow: FeederFlow, p0: np.ndarray) -> Linearisation:
    """AC state and central-difference sensitivities at ``p0`` (T, n_dev), one batch.

    Loadings (``|I| / I_max``, a kink at zero flow) are linearised signed by the direction
    of active power *at the base point* (PCCs: the microgrid's net position): smooth
    where a flow is large, and a flat tangent (never a too-steep one) where it is near
    zero, so a limit row never forbids a plan the AC flow allows; a plan that reverses a
    flow is re-linearised at itself by the next round.
    """
    n_t, n_dev = p0.shape
    k = 1 + 2 * n_dev
    eye = np.eye(n_dev) * _H_KW
    pts = np.concatenate([p0[:, None, :], p0[:, None, :] + eye, p0[:, None, :] - eye], axis=1)
    res = flow.solve(np.repeat(np.arange(n_t), k), pts.reshape(-1, n_dev))
    line, pcc, p_from = _loadings(flow, res, n_t * k)
    net = np.stack([p0[:, flow.device_owner == i].sum(axis=1) - flow.load_kw[:n_t, i]
                    for i in range(len(flow.pcc))], axis=1)
    line_dir = np.where(p_from.reshape(n_t, k, -1)[:, :1] < 0.0, -1.0, 1.0)
    pcc_dir = np.where(net < 0.0, -1.0, 1.0)[:, None, :]

    def split(arr: np.ndarray, direction: np.ndarray | float = 1.0
              ) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(arr, float).reshape(n_t, k, -1) * direction
        base, up, down = a[:, 0], a[:, 1:1 + n_dev], a[:, 1 + n_dev:]
        return base, np.transpose(up - down, (0, 2, 1)) / (2 * _H_KW)

    vm0, d_vm = split(res.vm_pu)
    line0, d_line = split(line, line_dir)
    pcc0, d_pcc = split(pcc, pcc_dir)
    conv = np.asarray(res.converged, bool).reshape(n_t, -1).all(axis=1)
    return Linearisation(p0, vm0, line0, pcc0, d_vm, d_line, d_pcc, conv)


# ---------------------------------------------------------------------- MILP rows
@dataclass
class NetworkRows:
    """The network's slack columns in the MILP and what the env charges for them."""

    env_price: dict[int, float] = field(default_factory=dict)  # column -> $ per unit
    hard: list[int] = field(default_factory=list)              # elastic slacks of hard limits

    def columns(self) -> set[int]:
        return set(self.env_price) | set(self.hard)

    def penalty(self, x: np.ndarray) -> float:
        """The env's safety penalty of solution ``x`` in the linear model ($)."""
        return float(sum(price * x[j] for j, price in self.env_price.items()))

    def violation(self, x: np.ndarray) -> float:
        """Elastic slack used on hard limits (pu + %, summed): 0 when every limit holds."""
        return float(sum(x[j] for j in self.hard))


def add_network_rows(m, injections: list[list[list[tuple[int, float]]]],
                     ranges: np.ndarray, lin: Linearisation, flow: FeederFlow,
                     agents: list[str], cfg, limits: str, elastic: bool = False
                     ) -> NetworkRows:
    """Rows bounding the linear model's voltages and loadings; see the module docstring.

    Hard limits are plain rows unless ``elastic`` (then each has a priced slack and the
    env's own penalty rows are written too): the oracle tries plain rows first, since a
    plan within every hard limit pays no penalty, and prices them only if the day has no
    such plan.

    ``injections[t][k]``: the MILP terms of device k's kW at step t; ``ranges`` (T, n_dev,
    2) each device's [min, max] kW at step t (to skip rows that cannot bind).
    """
    out = NetworkRows()
    if limits == "none":
        return out
    lo, hi = cfg.voltage_band
    hard = limits == "hard"
    strict = hard and not elastic
    v_price, l_price = cfg.voltage_penalty_per_pu, cfg.line_overload_penalty_per_pct
    # (index, env price): the env charges its microgrids' own buses and lines only
    buses = [(b, v_price) for a in agents for b in flow.mg_buses[a]]
    lines = [(k, l_price) for a in agents for k in flow.mg_lines[a]]
    trafos: list[tuple[int, float]] = []
    if hard:
        buses += [(b, 0.0) for b in flow.feeder_buses]
        lines += [(k, 0.0) for k in flow.feeder_lines]
        trafos = [(i, 0.0) for i in range(len(flow.pcc))]
    margin_v, margin_l = (_MARGIN_PU, _MARGIN_PCT) if hard else (0.0, 0.0)
    for t in range(lin.p0.shape[0]):
        writer = _StepRows(m, out, injections[t], lin.p0[t], ranges[t], strict)
        for idx, price in buses:
            y0, g = float(lin.vm0[t, idx]), lin.d_vm[t, idx]
            for bound, sign in ((hi, 1.0), (lo, -1.0)):  # over- and undervoltage
                if price and not strict:  # the env's own penalty, beyond the band's edge
                    writer.limit(y0, g, bound, sign, price, 0.0)
                if hard:   # a hard limit inside the band
                    writer.limit(y0, g, bound - sign * margin_v, sign, 0.0, _HARD_PER_PU)
        for table, y0s, grads in ((lines, lin.line0[t], lin.d_line[t]),
                                  (trafos, lin.pcc0[t], lin.d_pcc[t])):
            for idx, price in table:
                y0, g = float(y0s[idx]), grads[idx]
                for sign in (1.0, -1.0):  # |signed loading| <= 100
                    if price and not strict:
                        writer.limit(y0, g, sign * 100.0, sign, price, 0.0)
                    if hard:
                        writer.limit(y0, g, sign * (100.0 - margin_l), sign, 0.0,
                                     _HARD_PER_PCT)
    return out


class _StepRows:
    """Writes one step's limit rows: ``slack >= sign (y0 + g (p - p0) - bound)``.

    ``strict``: hard limits without a slack (``sign (y0 + g (p - p0)) <= sign bound``).
    """

    def __init__(self, m, out: NetworkRows, injections: list[list[tuple[int, float]]],
                 p0: np.ndarray, ranges: np.ndarray, strict: bool = False) -> None:
        self.m, self.out, self.injections, self.p0 = m, out, injections, p0
        self.strict = strict
        self.dp = ranges - p0[:, None]  # (n_dev, 2): how far each device can move

    def limit(self, y0: float, g: np.ndarray, bound: float, sign: float,
              env_price: float, hard_price: float) -> None:
        reach = y0 * sign + float(np.max(sign * g[:, None] * self.dp, axis=1).sum())
        if reach <= sign * bound:
            return  # no plan can reach this limit in the linear model: no row
        terms = [(j, sign * g[k] * c) for k in np.flatnonzero(g)
                 for j, c in self.injections[k]]
        const = sign * (y0 - float(g @ self.p0))
        if self.strict:
            self.m.row(terms, ub=sign * bound - const)
            return
        col = self.m.var(cost=env_price + hard_price)
        self.m.row(terms + [(col, -1.0)], ub=sign * bound - const)
        if env_price:
            self.out.env_price[col] = env_price
        if hard_price:
            self.out.hard.append(col)


# ---------------------------------------------------------------------- the AC report
@dataclass(frozen=True)
class NetworkReport:
    """The plan's linear model against the AC replay (see docs/evaluation.md).

    ``model_penalty`` is the safety penalty the linear model predicts, ``replay`` (the
    env's, in ``OracleResult.safety_penalty``) what the AC env charged; ``v_error_max_pu``
    is ``max |V_lin - V_ac|`` over every bus and step at the returned plan.
    ``violation_steps`` counts steps of the AC replay with a voltage outside the band on a
    microgrid or IEEE-34 bus, a line (microgrid or feeder) or PCC above 100 %, or a failed
    power flow; ``violations`` names them per kind.
    """

    limits: str
    linearisations: int
    v_error_max_pu: float
    loading_error_max_pct: float
    model_penalty: float
    model_violation: float
    violation_steps: int
    violations: dict[str, int]
    v_range_pu: tuple[float, float]
    line_loading_max_pct: float
    pcc_loading_max_pct: float


def ac_check(flow: FeederFlow, lin: Linearisation | None, p: np.ndarray,
             cfg) -> dict[str, object]:
    """AC state of plan ``p`` (T, n_dev): violations, the env's penalty, the model's error."""
    n_t = p.shape[0]
    steps = np.arange(n_t)
    res = flow.solve(steps, p)
    vm = np.asarray(res.vm_pu, float).reshape(n_t, -1)
    line = np.asarray(res.line_loading_percent, float).reshape(n_t, -1)
    trafo = np.asarray(res.trafo_loading_percent, float).reshape(n_t, -1)
    pcc = trafo[:, flow.pcc]
    conv = np.asarray(res.converged, bool).reshape(n_t)
    lo, hi = cfg.voltage_band
    mg_buses = np.concatenate(list(flow.mg_buses.values()))
    buses = np.concatenate([mg_buses, flow.feeder_buses])
    mg_lines = np.concatenate(list(flow.mg_lines.values()))
    v = vm[:, buses]
    kinds = {
        "overvoltage": (v > hi).any(axis=1),
        "undervoltage": (v < lo).any(axis=1),
        "line": (line[:, mg_lines] > 100.0).any(axis=1),
        "feeder_line": (line[:, flow.feeder_lines] > 100.0).any(axis=1)
        if len(flow.feeder_lines) else np.zeros(n_t, bool),
        "pcc": (pcc > 100.0).any(axis=1),
        "pf_failed": ~conv,
    }
    any_step = np.zeros(n_t, bool)
    for hit in kinds.values():
        any_step |= hit
    v_mg = vm[:, mg_buses]
    # the env's safety penalty of converged steps (failed steps are charged by its rule)
    penalty = (cfg.voltage_penalty_per_pu * (np.maximum(v_mg - hi, 0) + np.maximum(lo - v_mg, 0))
               .sum(axis=1) + cfg.line_overload_penalty_per_pct
               * np.maximum(line[:, mg_lines] - 100.0, 0).sum(axis=1))
    excess = (np.maximum(v - hi, 0).sum() + np.maximum(lo - v, 0).sum()
              + np.maximum(line - 100.0, 0).sum() + np.maximum(pcc - 100.0, 0).sum())
    out: dict[str, object] = {
        "vm": vm, "converged": conv,
        "violations": {k: int(h.sum()) for k, h in kinds.items()},
        "violation_steps": int(any_step.sum()),
        "penalty": float(penalty[conv].sum()), "excess": float(excess),
        "v_range_pu": (float(v.min()), float(v.max())),
        "line_loading_max_pct": float(line.max()),
        "pcc_loading_max_pct": float(pcc.max()),
        "v_error_max_pu": 0.0, "loading_error_max_pct": 0.0,
    }
    if lin is not None:
        out["v_error_max_pu"] = float(np.abs(lin.vm(p) - vm)[conv].max(initial=0.0))
        line_lin, pcc_lin = lin.loadings(p)
        errors = []
        for model, ac_val in ((line_lin, line), (pcc_lin, pcc)):
            near = (np.maximum(model, ac_val) >= _NEAR_LIMIT_PCT) & conv[:, None]
            errors.append(np.abs(model - ac_val)[near].max(initial=0.0))
        out["loading_error_max_pct"] = float(max(errors))
    return out


def settled(limits: str, ac: dict[str, object], model_penalty: float,
            model_violation: float) -> bool:
    """Whether the AC state of a plan confirms its linear model (so linearising stops).

    ``"hard"``: the AC plan meets every limit (or the day is infeasible in the model and
    the AC plan violates no more than the model said); ``"penalty"``: the AC env charges
    no more than the model's penalty (+ 1 cent).
    """
    if limits == "hard":
        return float(ac["excess"]) == 0.0 or (
            model_violation > 0.0 and float(ac["excess"]) <= model_violation)
    return float(ac["penalty"]) <= model_penalty + 0.01 and bool(np.all(ac["converged"]))
