"""The oracle's network model: AC power flow linearised at the plan, limits as MILP rows.

Why linear and not LinDistFlow: the env's feeder (IEEE-13 microgrids under PCC
transformers on the IEEE-34 feeder, with its lines' R/X, taps and shunts) is solved by the
env's own AC solver, and a first-order model of *that* solver is what the replay will be
judged by. So for every step t the oracle solves the AC power flow at a base set-point
``p0_t`` (every device's kW) and by central finite differences (±``_H_KW``) gets the
sensitivities of every bus voltage magnitude, line loading and PCC transformer loading
to every device's active injection:

    y_t(p) ~= y_t(p0_t) + J_t (p - p0_t),     J_t = dy/dp at p0_t (AC, exact to O(h^2))

Loads and the feeder's own loads stay at their series values. With the env's
``reactive_power`` on, every PV/ESS inverter's Q (kvar) is a set-point too, after the
devices' kW in ``FeederFlow.solve``, so the same differences give dV/dQ, d loading/dQ and
the charged losses' tangent in Q. The first base point is the network-blind
optimum; the MILP is then re-solved with the rows linearised at its own previous solution
(sequential linear programming) until the AC state of the plan confirms the limits
(``settled``) or ``MAX_LINEARISATIONS`` rounds are done.

Network costs (the config's ``network_costs``, ``powergrid.network_costs``): the losses
the env allocates to the microgrids are linearised through the env's own allocation rule
(:class:`NetworkCharges`, ``_loss_rows``), the shared elements' violations priced at the
microgrids' share of the push; the oracle (``powergrid.evaluation.oracle``) solves these
rounds in a trust region around the best plan so far and returns the plan that is
cheapest in the AC env (see docs/evaluation.md).

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

import functools
from dataclasses import dataclass, field, fields

import numpy as np

from powergrid.network_costs import NetworkCosts
from powergrid.pf import make_solver
from powergrid.pf.base import PFResult
from powergrid.pf.model import NetworkModel

_H_KW = 1.0                # finite-difference step, kW
_V_TOL_PU = 1e-4           # stop linearising once the model's voltages are this close to AC
MAX_LINEARISATIONS = 4     # sequential-LP rounds for the limits (the oracle stops after them)
_MARGIN_PU = 1e-3          # hard limits: inside the band by this much (linearisation error)
_MARGIN_PCT = 0.5          # hard limits: loadings at most 100 - this
_HARD_PER_PU = 1e5         # $/pu-step of an elastic slack on a hard voltage limit
_HARD_PER_PCT = 1e3        # $/%-step of an elastic slack on a hard loading limit
_NETWORK_TOL = 1e-3        # stop once the model's network costs are this close (relative)
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
        # the env's own allocation rules of losses and violations (powergrid.network_costs)
        self.costs = NetworkCosts(nw, getattr(self.solver, "model", None)
                                  or NetworkModel.from_net(nw.net))
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
        owners, reactive = [], []
        for i, a in enumerate(agents):
            for d in env.devices(a):
                element, row = nw.device_rows[(a, d.name)]
                reactive.append(bool(getattr(d, "reactive", False)))
                self.devices.append((a, d.name, element, row))
                owners.append(i)
        # set-points are every device's kW, then every inverter's kvar (reactive power on)
        self.q_devices = np.flatnonzero(reactive)
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
        # the shared network's other transformers (regulators, feeder transformers)
        self.feeder_trafos = np.setdiff1d(self.costs.feeder_trafos, self.pcc)

    def solve(self, steps: np.ndarray, p_kw: np.ndarray):
        """AC power flow of steps ``steps`` (B,) at set-points ``p_kw`` (B, n_dev + n_q):
        every device's kW, then every inverter's kvar (``q_devices``)."""
        steps = np.asarray(steps, dtype=np.intp)
        load_p = self._load_kw[steps][:, self._owner] * self._share_mw
        if len(self._feeder_rows):
            load_p[:, self._feeder_rows] = self._feeder_mw * self._feeder_pu[steps][:, None]
        sgen = np.zeros((len(steps), self.n_sgen))
        storage = np.zeros((len(steps), self.n_storage))
        sgen_q, storage_q = np.zeros_like(sgen), np.zeros_like(storage)
        n = len(self.devices)
        for k, (_, _, element, row) in enumerate(self.devices):
            if element == "storage":
                storage[:, row] = -p_kw[:, k] * 1e-3  # pandapower storage: + = charging
            else:
                sgen[:, row] = p_kw[:, k] * 1e-3
        for j, k in enumerate(self.q_devices):  # pandapower storage: q > 0 consumes
            element, row = self.devices[k][2:]
            (storage_q if element == "storage" else sgen_q)[:, row] = (
                (-1.0 if element == "storage" else 1.0) * p_kw[:, n + j] * 1e-3)
        self.solver.reset()
        return self.solver.solve(load_p, load_p * self._q_ratio, sgen, storage, sgen_q,
                                 storage_q)


# ---------------------------------------------------------------------- linearisation
@dataclass(frozen=True)
class NetworkCharges:
    """What the env charges the microgrids for the network around a base point, per step.

    ``charged_kw`` is the part of the network's losses the env allocates to the
    microgrids together (``allocate_losses``; the rest is the DSO's, charged to nobody)
    and ``d_charged`` its central-difference tangent per kW of each device, through the
    env's own allocation rule at every perturbed point: the shares move with the
    injections as much as the losses do (by Euler, ``sum_u m_u ~ 2 L``), so marginal loss
    factors alone (the losses' own tangent) would misprice a microgrid's export. Priced
    at ``loss_price`` $/kWh. ``*_share`` are the microgrids' part of the push on each
    shared element (``allocate_violations``, exact sensitivities at the base point): the
    share of a violation's penalty they would pay.
    """

    charged_kw: np.ndarray    # (T,)
    d_charged: np.ndarray     # (T, n_dev) kW/kW
    loss_price: np.ndarray    # (T,) $/kWh
    over_share: np.ndarray    # (T, n_feeder_bus)
    under_share: np.ndarray   # (T, n_feeder_bus)
    line_share: np.ndarray    # (T, n_feeder_line)
    pcc_share: np.ndarray     # (T, n_mg)
    trafo_share: np.ndarray   # (T, n_feeder_trafo)


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
    trafo0: np.ndarray | None = None    # (T, n_feeder_trafo) %, the other shared trafos
    d_trafo: np.ndarray | None = None   # (T, n_feeder_trafo, n_dev)
    charges: NetworkCharges | None = None  # the env's network costs, if modelled

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


def linearise(flow: FeederFlow, p0: np.ndarray, cfg=None,
              loss_price: np.ndarray | None = None) -> Linearisation:
    """AC state and central-difference sensitivities at ``p0`` (T, n_dev), one batch.

    Loadings (``|I| / I_max``, a kink at zero flow) are linearised signed by the direction
    of active power *at the base point* (PCCs: the microgrid's net position): smooth
    where a flow is large, and a flat tangent (never a too-steep one) where it is near
    zero, so a limit row never forbids a plan the AC flow allows; a plan that reverses a
    flow is re-linearised at itself by the next round. The other shared transformers
    (regulators; they carry the feeder's flow one way) are linearised unsigned.

    ``loss_price`` (T,) $/kWh: also the env's network costs at the base point
    (:class:`NetworkCharges`, exact sensitivities; ``cfg`` gives the penalty rates).
    """
    n_t, n_dev = p0.shape
    k = 1 + 2 * n_dev
    eye = np.eye(n_dev) * _H_KW
    pts = np.concatenate([p0[:, None, :], p0[:, None, :] + eye, p0[:, None, :] - eye], axis=1)
    res = flow.solve(np.repeat(np.arange(n_t), k), pts.reshape(-1, n_dev))
    line, pcc, p_from = _loadings(flow, res, n_t * k)
    active = p0[:, :len(flow.devices)]
    net = np.stack([active[:, flow.device_owner == i].sum(axis=1) - flow.load_kw[:n_t, i]
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
    trafo = np.asarray(res.trafo_loading_percent, float).reshape(n_t * k, -1)
    trafo0, d_trafo = split(trafo[:, flow.feeder_trafos])
    conv = np.asarray(res.converged, bool).reshape(n_t, -1).all(axis=1)
    charges = None
    if loss_price is not None:
        charged = _charged_losses(flow, res, cfg).reshape(n_t, k)
        c0, d_c = split(charged)
        charges = _charges(flow, res, np.arange(n_t) * k, conv, cfg,
                           np.asarray(loss_price, float), c0[:, 0], d_c[:, 0])
    return Linearisation(p0, vm0, line0, pcc0, d_vm, d_line, d_pcc, conv, trafo0, d_trafo,
                         charges)


def _by_user(d: tuple[np.ndarray, np.ndarray], pq: tuple[np.ndarray, np.ndarray],
             onehot: np.ndarray) -> np.ndarray:
    """Per-user contributions ``(E, N + 1)`` as ``allocate_violations`` weighs them."""
    return (d[0] * pq[0] + d[1] * pq[1]) @ onehot


def _charged_losses(flow: FeederFlow, res: PFResult, cfg) -> np.ndarray:
    """The losses the env allocates to the microgrids together (kW), per batch row."""
    rates = (tuple(cfg.voltage_band), cfg.voltage_penalty_per_pu,
             cfg.line_overload_penalty_per_pct)
    conv = np.atleast_1d(np.asarray(res.converged, bool))
    out = np.zeros(len(conv))
    for b in np.flatnonzero(conv):
        out[b] = float(flow.costs.evaluate(_row(res, b), *rates).loss_share_kw.sum())
    return out


def _charges(flow: FeederFlow, res: PFResult, base: np.ndarray, conv: np.ndarray, cfg,
             loss_price: np.ndarray, charged: np.ndarray, d_charged: np.ndarray
             ) -> NetworkCharges:
    """The microgrids' shares of each shared element's push at the base point of every
    step (row ``base[t]`` of the batched solve ``res``)."""
    costs, sens = flow.costs, flow.costs.sens
    n_t, n_mg = len(base), len(flow.pcc)
    n_line = len(flow.network.net.line)
    out = {name: np.zeros((n_t, n)) for name, n in (
        ("over_share", len(flow.feeder_buses)), ("under_share", len(flow.feeder_buses)),
        ("line_share", len(flow.feeder_lines)), ("pcc_share", n_mg),
        ("trafo_share", len(flow.feeder_trafos)))}

    def mg_part(x: np.ndarray) -> np.ndarray:
        """Microgrids' share of the positive push on each element (rows of x: (E, N + 1))."""
        push = np.maximum(x, 0.0)
        total = push.sum(axis=1)
        return np.where(total > 0, push[:, :n_mg].sum(axis=1) / np.where(total > 0, total, 1),
                        0.0)

    for t in np.flatnonzero(conv):
        row = _row(res, base[t])
        op = sens.at(row.vm_pu, row.va_degree)
        pq = op.injections()
        x = _by_user(op.voltage(flow.feeder_buses, "pq"), pq, costs.onehot)
        out["over_share"][t], out["under_share"][t] = mg_part(x), mg_part(-x)
        for name, rows in (("line_share", flow.feeder_lines), ("pcc_share", n_line + flow.pcc),
                           ("trafo_share", n_line + flow.feeder_trafos)):
            if len(rows):
                out[name][t] = mg_part(_by_user(op.loading(rows, "pq"), pq, costs.onehot))
    return NetworkCharges(charged, d_charged, loss_price, out["over_share"],
                          out["under_share"], out["line_share"], out["pcc_share"],
                          out["trafo_share"])


# ---------------------------------------------------------------------- MILP rows
@dataclass
class NetworkRows:
    """The network's columns in the MILP and what the env charges for them."""

    env_price: dict[int, float] = field(default_factory=dict)  # column -> $ per unit
    hard: list[int] = field(default_factory=list)              # elastic slacks of hard limits
    network_price: dict[int, float] = field(default_factory=dict)  # network costs' columns

    def columns(self) -> set[int]:
        return set(self.env_price) | set(self.hard) | set(self.network_price)

    def penalty(self, x: np.ndarray) -> float:
        """The env's safety penalty of solution ``x`` in the linear model ($)."""
        return float(sum(price * x[j] for j, price in self.env_price.items()))

    def network_cost(self, x: np.ndarray) -> float:
        """The env's network costs (losses, violations) of ``x`` in the linear model ($)."""
        return float(sum(price * x[j] for j, price in self.network_price.items()))

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
    such plan. With ``lin.charges`` (network costs modelled) the shared elements'
    violations are priced as the env charges them (wherever a slack is priced) and each
    step's charged losses are a priced column (``_loss_rows``).

    ``injections[t][k]``: the MILP terms of device k's kW at step t; ``ranges`` (T, n_dev,
    2) each device's [min, max] kW at step t (to skip rows that cannot bind).
    """
    out = NetworkRows()
    charges = lin.charges
    dt = cfg.dt_hours
    if charges is not None:
        _loss_rows(m, out, injections, lin, dt)
    if limits == "none":
        return out
    lo, hi = cfg.voltage_band
    hard = limits == "hard"
    strict = hard and not elastic
    v_price, l_price = cfg.voltage_penalty_per_pu, cfg.line_overload_penalty_per_pct
    margin_v, margin_l = (_MARGIN_PU, _MARGIN_PCT) if hard else (0.0, 0.0)
    # the env charges its microgrids' own buses and lines (safety penalty) and, with
    # network costs, the shared ones (their share of each violation); hard limits all
    for t in range(lin.p0.shape[0]):
        writer = _StepRows(m, out, injections[t], lin.p0[t], ranges[t], strict)
        share = functools.partial(_share, charges, t)
        voltage_tables = [(np.concatenate([flow.mg_buses[a] for a in agents]), False,
                           None, None),
                          (flow.feeder_buses, True, share("over_share"), share("under_share"))]
        for buses, feeder, over, under in voltage_tables:
            for j, idx in enumerate(buses):
                y0, g = float(lin.vm0[t, idx]), lin.d_vm[t, idx]
                for bound, sign, part in ((hi, 1.0, over), (lo, -1.0, under)):
                    writer.write(y0, g, bound, sign, margin_v, hard, _HARD_PER_PU,
                                 *_prices(v_price, feeder, part, j))
        mg_lines = np.concatenate([flow.mg_lines[a] for a in agents])
        loading_tables = [(mg_lines, lin.line0[t], lin.d_line[t], False, None),
                          (flow.feeder_lines, lin.line0[t], lin.d_line[t], True,
                           share("line_share")),
                          (np.arange(len(flow.pcc)), lin.pcc0[t], lin.d_pcc[t], True,
                           share("pcc_share"))]
        if lin.trafo0 is not None:
            loading_tables.append((np.arange(len(flow.feeder_trafos)), lin.trafo0[t],
                                   lin.d_trafo[t], True, share("trafo_share")))
        for rows, y0s, grads, feeder, part in loading_tables:
            for j, idx in enumerate(rows):
                y0, g = float(y0s[idx]), grads[idx]
                for sign in (1.0, -1.0):  # |signed loading| <= 100
                    writer.write(y0, g, sign * 100.0, sign, margin_l, hard, _HARD_PER_PCT,
                                 *_prices(l_price, feeder, part, j))
    return out


def _share(charges: NetworkCharges | None, t: int, name: str) -> np.ndarray | None:
    return None if charges is None else getattr(charges, name)[t]


def _prices(rate: float, feeder: bool, part: np.ndarray | None, j: int
            ) -> tuple[float, float]:
    """(safety penalty, network charge) per unit beyond a limit, as the env charges them."""
    if not feeder:
        return rate, 0.0      # a microgrid's own bus or line: its safety penalty
    if part is None:
        return 0.0, 0.0       # the shared network, not charged (network costs off)
    return 0.0, rate * float(part[j])


def _loss_rows(m, out: NetworkRows, injections: list[list[list[tuple[int, float]]]],
               lin: Linearisation, dt: float) -> None:
    """Per step a column (kW) of the losses charged to the microgrids, on its tangent.

    Not cuts from below: the losses are convex in the injections, but their allocation
    (a ratio of marginal charges) is not, and the env can even credit the microgrids
    (a negative share when together they reduce the losses).
    """
    c = lin.charges
    assert c is not None
    for t, step in enumerate(injections):
        if not lin.converged[t]:
            continue
        price = float(c.loss_price[t] * dt)
        col = m.var(-np.inf, np.inf, cost=price)
        out.network_price[col] = price
        g = c.d_charged[t]
        terms = [(j, -float(g[k]) * v) for k in np.flatnonzero(g) for j, v in step[k]]
        const = float(c.charged_kw[t] - g @ lin.p0[t])
        m.row([(col, 1.0)] + terms, lb=const, ub=const)


class _StepRows:
    """Writes one step's limit rows: ``slack >= sign (y0 + g (p - p0) - bound)``.

    ``strict``: hard limits without a slack (``sign (y0 + g (p - p0)) <= sign bound``).
    """

    def __init__(self, m, out: NetworkRows, injections: list[list[tuple[int, float]]],
                 p0: np.ndarray, ranges: np.ndarray, strict: bool = False) -> None:
        self.m, self.out, self.injections, self.p0 = m, out, injections, p0
        self.strict = strict
        self.dp = ranges - p0[:, None]  # (n_dev, 2): how far each device can move

    def write(self, y0: float, g: np.ndarray, bound: float, sign: float, margin: float,
              hard: bool, hard_price: float, env_price: float, network_price: float) -> None:
        """The priced rows beyond the limit itself and the hard one inside it."""
        if (env_price or network_price) and not self.strict:
            self.limit(y0, g, bound, sign, env_price, 0.0, network_price)
        if hard:
            self.limit(y0, g, bound - sign * margin, sign, 0.0, hard_price)

    def limit(self, y0: float, g: np.ndarray, bound: float, sign: float,
              env_price: float, hard_price: float, network_price: float = 0.0) -> None:
        reach = y0 * sign + float(np.max(sign * g[:, None] * self.dp, axis=1).sum())
        if reach <= sign * bound:
            return  # no plan can reach this limit in the linear model: no row
        terms = [(j, sign * g[k] * c) for k in np.flatnonzero(g)
                 for j, c in self.injections[k]]
        const = sign * (y0 - float(g @ self.p0))
        if self.strict:
            self.m.row(terms, ub=sign * bound - const)
            return
        col = self.m.var(cost=env_price + hard_price + network_price)
        self.m.row(terms + [(col, -1.0)], ub=sign * bound - const)
        if env_price:
            self.out.env_price[col] = env_price
        if network_price:
            self.out.network_price[col] = network_price
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
    microgrid or IEEE-34 bus, a line (microgrid or feeder), a PCC or other shared
    transformer above 100 %, or a failed power flow; ``violations`` names them per kind.
    ``linearisations``: the MILP rounds before the returned plan (each on the network
    linearised at an earlier plan). ``model_network_cost`` / ``network_cost``: the env's
    network costs of the plan in the linear model (0 when not modelled) and in the replay.
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
    model_network_cost: float = 0.0  # the linear model's network costs of the plan ($)
    network_cost: float = 0.0        # the AC replay's (network_losses + network_violation)


def ac_check(flow: FeederFlow, lin: Linearisation | None, p: np.ndarray,
             cfg, loss_price: np.ndarray | None = None) -> dict[str, object]:
    """AC state of plan ``p`` (T, n_dev): violations, the env's penalty, the model's error.

    With ``loss_price`` (T,) also ``network_cost``: what the env charges the microgrids for
    losses and shared-network violations at that state ($, ``powergrid.network_costs``).
    """
    n_t = p.shape[0]
    steps = np.arange(n_t)
    res = flow.solve(steps, p)
    vm = np.asarray(res.vm_pu, float).reshape(n_t, -1)
    line = np.asarray(res.line_loading_percent, float).reshape(n_t, -1)
    trafo = np.asarray(res.trafo_loading_percent, float).reshape(n_t, -1)
    pcc = trafo[:, flow.pcc]
    xfm = trafo[:, flow.feeder_trafos]
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
        "feeder_trafo": (xfm > 100.0).any(axis=1),
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
              + np.maximum(line - 100.0, 0).sum() + np.maximum(pcc - 100.0, 0).sum()
              + np.maximum(xfm - 100.0, 0).sum())
    out: dict[str, object] = {
        "vm": vm, "converged": conv,
        "violations": {k: int(h.sum()) for k, h in kinds.items()},
        "violation_steps": int(any_step.sum()),
        "penalty": float(penalty[conv].sum()), "excess": float(excess),
        "v_range_pu": (float(v.min()), float(v.max())),
        "line_loading_max_pct": float(line.max()),
        "pcc_loading_max_pct": float(pcc.max()),
        "v_error_max_pu": 0.0, "loading_error_max_pct": 0.0,
        "network_cost": 0.0 if loss_price is None else network_cost(flow, res, cfg, loss_price),
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


def _row(res: PFResult, b: int) -> PFResult:
    """Row ``b`` of a batched power-flow result."""
    return PFResult(**{f.name: np.asarray(getattr(res, f.name))[b] for f in fields(PFResult)})


def network_cost(flow: FeederFlow, res: PFResult, cfg, loss_price: np.ndarray) -> float:
    """The env's network costs of the microgrids ($) over the steps of a batched solve."""
    rates = (tuple(cfg.voltage_band), cfg.voltage_penalty_per_pu,
             cfg.line_overload_penalty_per_pct)
    total = 0.0
    for t in np.flatnonzero(np.atleast_1d(res.converged)):
        alloc = flow.costs.evaluate(_row(res, t), *rates)
        total += (float(alloc.loss_share_kw.sum()) * cfg.dt_hours * float(loss_price[t])
                  + float(alloc.violation_penalty.sum()))
    return total


def settled(limits: str, ac: dict[str, object], model_penalty: float,
            model_violation: float, model_network: float | None = None) -> bool:
    """Whether the AC state of a plan confirms its linear model (so linearising stops).

    ``"hard"``: the AC plan meets every limit (or the day is infeasible in the model and
    the AC plan violates no more than the model said); ``"penalty"``: the AC env charges
    no more than the model's penalty (+ 1 cent); ``"none"``: always. With
    ``model_network`` (network costs modelled) also: the AC network costs are within
    ``_NETWORK_TOL`` of the model's.
    """
    if model_network is not None and abs(float(ac["network_cost"]) - model_network) > (
            _NETWORK_TOL * max(1.0, abs(float(ac["network_cost"])))):
        return False
    if limits == "hard":
        return float(ac["excess"]) == 0.0 or (
            model_violation > 0.0 and float(ac["excess"]) <= model_violation)
    if limits == "none":
        return True
    return float(ac["penalty"]) <= model_penalty + 0.01 and bool(np.all(ac["converged"]))
