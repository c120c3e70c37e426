"""Network costs: who pays for the losses and violations of a shared feeder, and for using it.

Three documented rules, each a pure function over arrays (leading batch axes allowed),
plus :class:`NetworkCosts`, which evaluates them for a :class:`MicrogridNetwork` from a
solved power flow.

**Users.** Every PQ bus belongs to one *user*: microgrid ``i`` owns the buses of its own
feeder (PCC transformer's low-voltage side included), the operator (DSO, user ``N``) owns
every other bus (the shared feeder and its own loads). A user's injection is the vector of
its buses' net injections (P and Q, generation positive), read from the solved state.

**Losses** (:func:`allocate_losses`). A user's *marginal charge* is
``m_u = sum_{k in u} (dL/dP_k P_k + dL/dQ_k Q_k)``, its injections weighted by their marginal
loss factors (:mod:`powergrid.pf.sensitivity`). Losses are close to a quadratic form of
the injections, so by Euler's theorem ``sum_u m_u ~ 2 L``: marginal charges over-collect.
They are scaled by one common factor ``L / sum_u m_u`` so the shares sum to the actual
losses ``L`` while keeping the marginal proportions (the usual normalisation of MLF-based
loss allocation). With line charging the losses are not exactly quadratic, so the factor is
computed, not fixed at 1/2; if ``sum_u m_u`` does not have the sign of ``L`` or is smaller
than ``L`` (a factor above 1: users' charges of opposite signs cancel, and scaling them up
would charge or credit a user many times the whole network's losses) the shares fall back
to ``|m_u|`` proportions (equal shares if every ``m_u`` is 0). So no share exceeds
``max(|m_u|, |L|)`` in size. A share can be negative: a user whose injection reduces the
losses is credited. Microgrids pay
``network_losses = share x dt x loss price`` ($; the loss price is the step's retail price
unless configured); the DSO's share (its own loads' losses) is reported, charged to nobody.

**Violations** (:func:`allocate_violations`). Each violated element ``e`` of the shared
network (a feeder bus outside ``voltage_band``, a feeder line or PCC/feeder transformer
above 100 %) has a penalty ``pen_e`` at the env's rates (``voltage_penalty_per_pu`` per pu,
``line_overload_penalty_per_pct`` per %). A user's *contribution* is its injections times
the element's sensitivities, signed so that positive pushes the element further out:
``c_eu = s_e sum_{k in u} (dy_e/dP_k P_k + dy_e/dQ_k Q_k)`` with ``s_e = +1`` for an
over-voltage or an overload, ``-1`` for an under-voltage (Euler again: for a quantity
homogeneous of degree one in the injections, as a branch current nearly is, the
contributions sum to the quantity). Users pay ``pen_e max(c_eu, 0) / sum_u' max(c_eu', 0)``:
those who push pay in proportion, those who help (or inject nothing) pay nothing, and the
shares sum to ``pen_e`` (if nobody pushes, nobody is charged). The DSO is a user too: the
share its own loads cause is charged to nobody, so a microgrid never pays for the feeder's
own loads. Microgrids pay ``network_violation``.

**Network-use fee** (:func:`network_use_fees`). A P2P trade between microgrids ``i`` and
``j`` pays ``fee_per_kwh_per_ohm x z_ij`` per kWh on top of the flat trading fee, where
``z_ij = |Z_ii + Z_jj - Z_ij - Z_ji|`` (ohm, at the feeder's voltage) is the Thevenin
impedance between their PCC buses (feeder side) from the Z-bus: the electrical distance a
unit of traded energy travels, so a trade between neighbours is cheaper than one across
the feeder. It enters the market as a :class:`heron.market.PairFees`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heron.market import PairFees
from powergrid.networks.multi_microgrid import MicrogridNetwork
from powergrid.pf.base import PFResult
from powergrid.pf.model import NetworkModel
from powergrid.pf.sensitivity import OperatingPoint, Sensitivity

__all__ = ["NETWORK_COST_TERMS", "NETWORK_DSO_KEYS", "NetworkCostResult", "NetworkCosts", "allocate_losses",
           "allocate_violations", "electrical_distance_ohm", "network_use_fees"]

# cost terms added to infos[a]["costs"] when network costs are on ($ per step)
NETWORK_COST_TERMS: tuple[str, ...] = ("network_losses", "network_violation")
# shared infos of a step with network costs: what the DSO's own loads cause, charged to nobody
NETWORK_DSO_KEYS: tuple[str, ...] = ("network_losses_dso_kw", "network_violation_dso")
_TINY = 1e-12


# ---------------------------------------------------------------------- pure rules


def allocate_losses(losses: np.ndarray | float, marginal: np.ndarray) -> np.ndarray:
    """Shares ``(..., U)`` of ``losses`` ``(...)`` from marginal charges ``(..., U)``.

    Sums to ``losses`` exactly (up to round-off) on every row; see the module docstring.
    """
    L = np.asarray(losses, dtype=float)
    m = np.asarray(marginal, dtype=float)
    if m.ndim < 1 or m.shape[:-1] != L.shape:
        raise ValueError(f"marginal must be (..., U) over losses {L.shape}, got {m.shape}")
    total = m.sum(axis=-1)
    scale = np.maximum(np.abs(m).sum(axis=-1), np.abs(L))
    proportional = ((total * L > 0) & (np.abs(total) > _TINY * np.maximum(scale, 1.0))
                    & (np.abs(total) >= np.abs(L)))
    absm = np.abs(m)
    abs_total = absm.sum(axis=-1)
    U = m.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(proportional[..., None], m / total[..., None],
                           np.where(abs_total[..., None] > 0, absm / abs_total[..., None],
                                    1.0 / U))
    return L[..., None] * weights


def allocate_violations(penalty: np.ndarray, contribution: np.ndarray) -> np.ndarray:
    """Shares ``(..., U)`` of element penalties ``(..., E)`` from contributions ``(..., E, U)``.

    Positive contributions push element ``e`` further out of its limit; each element's
    penalty is split in proportion to them, nothing to users with ``c <= 0``. An element no
    user pushes is not allocated (its penalty is ``unallocated_penalty``).
    """
    pen = np.asarray(penalty, dtype=float)
    c = np.asarray(contribution, dtype=float)
    if c.shape[:-1] != pen.shape:
        raise ValueError(f"contribution must be (..., E, U) over penalty {pen.shape}, got "
                         f"{c.shape}")
    if np.any(pen < 0) or not np.all(np.isfinite(pen)):
        raise ValueError("penalties must be finite and >= 0")
    push = np.maximum(c, 0.0)
    total = push.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(total > 0, push / total, 0.0)
    return (pen[..., None] * w).sum(axis=-2)


def unallocated_penalty(penalty: np.ndarray, contribution: np.ndarray) -> np.ndarray:
    """The part of ``penalty`` (elements nobody pushes) that :func:`allocate_violations` leaves."""
    pen = np.asarray(penalty, dtype=float)
    nobody = ~(np.asarray(contribution) > 0).any(axis=-1)
    return (pen * nobody).sum(axis=-1)


def electrical_distance_ohm(model: NetworkModel, buses: np.ndarray, vn_kv: np.ndarray
                            ) -> np.ndarray:
    """``(K, K)`` Thevenin impedance magnitudes (ohm) between pandapower bus rows ``buses``.

    ``vn_kv`` gives each bus's nominal voltage; a pair is expressed at the first bus's
    level. The slack bus (a stiff source) is at distance ``|Z_jj|`` from bus ``j``.
    """
    buses = np.asarray(buses, dtype=np.int64)
    pos = np.full(model.n, -1, dtype=np.int64)
    pos[model.pq] = np.arange(len(model.pq))
    internal = model.bus_map[buses]
    if np.any(internal < 0):
        raise ValueError(f"buses {buses[internal < 0].tolist()} are out of service")
    p = pos[internal]
    K = len(buses)
    Zs = np.zeros((K, K), dtype=complex)  # Z among the buses, slack rows/cols zero
    live = p >= 0
    Zs[np.ix_(live, live)] = model.Z[np.ix_(p[live], p[live])]
    d = np.abs(np.diag(Zs)[:, None] + np.diag(Zs)[None, :] - Zs - Zs.T)
    z_base = np.asarray(vn_kv, dtype=float) ** 2 / model.base_mva
    return d * z_base[:, None]


def network_use_fees(distance_ohm: np.ndarray, fee_per_kwh_per_ohm: float) -> np.ndarray:
    """Per-kWh pair fees ``fee_per_kwh_per_ohm x distance`` (symmetric, zero diagonal)."""
    if not (np.isfinite(fee_per_kwh_per_ohm) and fee_per_kwh_per_ohm >= 0):
        raise ValueError(f"fee_per_kwh_per_ohm must be a finite number >= 0, got "
                         f"{fee_per_kwh_per_ohm!r}")
    d = np.asarray(distance_ohm, dtype=float)
    fees = fee_per_kwh_per_ohm * 0.5 * (d + d.T)
    np.fill_diagonal(fees, 0.0)
    return fees


# ---------------------------------------------------------------------- on a network


@dataclass(frozen=True)
class NetworkCostResult:
    """One step's network costs; arrays over microgrids in network order."""

    losses_kw: float                 # the network's losses
    loss_share_kw: np.ndarray        # (N,) each microgrid's allocated losses
    dso_loss_share_kw: float         # the DSO's share (its own loads), charged to nobody
    violation_penalty: np.ndarray    # (N,) $ allocated violation penalty
    violation_total: float           # $ total penalty of the shared network's violations
    violation_dso: float             # $ of it the DSO's loads cause (or nobody), uncharged
    loss_factor_pcc: np.ndarray      # (N,) dL/dP at each PCC (LV side), MW/MW


class NetworkCosts:
    """Allocates a shared network's losses and violations to the microgrids on it."""

    def __init__(self, network: MicrogridNetwork, model: NetworkModel) -> None:
        net = network.net
        self.names = tuple(network.names)
        self.sens = Sensitivity(model)
        md = model
        N = len(self.names)
        # owner of each PQ position: microgrid index, N for the DSO
        owner_bus = np.full(len(net.bus), N, dtype=np.int64)
        for i, name in enumerate(self.names):
            owner_bus[network.bus_rows[name]] = i
        pos = self.sens.bus_pos
        self.owner = np.full(len(md.pq), N, dtype=np.int64)
        live = pos >= 0
        self.owner[pos[live]] = owner_bus[live]
        self.onehot = np.zeros((len(md.pq), N + 1))
        self.onehot[np.arange(len(md.pq)), self.owner] = 1.0
        # shared elements: feeder buses, lines outside every microgrid, transformers with an
        # end on a feeder bus (PCC transformers included)
        self.feeder_buses = np.asarray(network.feeder_bus_rows, dtype=np.int64)
        own_lines = np.concatenate([np.asarray(r, np.int64) for r in network.line_rows.values()]
                                   or [np.zeros(0, np.int64)])
        self.feeder_lines = np.setdiff1d(np.arange(len(net.line)), own_lines)
        feeder_idx = set(net.bus.index[self.feeder_buses])
        hv = net.trafo["hv_bus"].to_numpy()
        lv = net.trafo["lv_bus"].to_numpy()
        self.feeder_trafos = np.array([k for k in range(len(net.trafo))
                                       if hv[k] in feeder_idx or lv[k] in feeder_idx], np.int64)
        self.branches = np.concatenate([self.feeder_lines, len(net.line) + self.feeder_trafos])
        rows = [network.pcc_trafo_rows[n] for n in self.names]
        self.pcc_hv = net.bus.index.get_indexer(net.trafo["hv_bus"].to_numpy()[rows])
        self.pcc_lv = net.bus.index.get_indexer(net.trafo["lv_bus"].to_numpy()[rows])
        self.distance_ohm = electrical_distance_ohm(
            md, self.pcc_hv, net.bus["vn_kv"].to_numpy(float)[self.pcc_hv])

    def pair_fees(self, fee_per_kwh_per_ohm: float) -> PairFees:
        """The network-use fee between every pair of microgrids, for the market."""
        return PairFees(self.names, network_use_fees(self.distance_ohm, fee_per_kwh_per_ohm))

    def _by_user(self, dp: np.ndarray, dq: np.ndarray, p: np.ndarray, q: np.ndarray
                 ) -> np.ndarray:
        """``(k, N + 1)`` per-user sums of injection-weighted sensitivities."""
        return (dp * p + dq * q) @ self.onehot

    def evaluate(self, pf: PFResult, voltage_band: tuple[float, float],
                 voltage_penalty_per_pu: float, overload_penalty_per_pct: float
                 ) -> NetworkCostResult:
        """Allocate the losses (kW) and violation penalties ($) of one converged solve."""
        op = self.sens.at(pf.vm_pu, pf.va_degree)
        loading = np.concatenate([pf.line_loading_percent, pf.trafo_loading_percent])
        return self._allocate(op, float(pf.losses_mw) * 1e3, pf.vm_pu, loading, voltage_band,
                              voltage_penalty_per_pu, overload_penalty_per_pct)

    def evaluate_voltages(self, V: np.ndarray, voltage_band: tuple[float, float],
                          voltage_penalty_per_pu: float, overload_penalty_per_pct: float,
                          losses_mw: float | None = None) -> NetworkCostResult:
        """The same from internal complex bus voltages ``(n,)`` (a batch row's state);
        ``losses_mw``, when given, is the total to allocate (the solver's reported losses,
        so the shares sum to what the infos show), else the losses at ``V``."""
        op = self.sens.at_voltages(V)
        losses = op.losses_mw() if losses_mw is None else float(losses_mw)
        return self._allocate(op, losses * 1e3, op.bus_vm(), op.branch_loading(),
                              voltage_band, voltage_penalty_per_pu, overload_penalty_per_pct)

    def _allocate(self, op: OperatingPoint, losses_kw: float, vm: np.ndarray,
                  loading: np.ndarray, voltage_band: tuple[float, float],
                  voltage_penalty_per_pu: float, overload_penalty_per_pct: float
                  ) -> NetworkCostResult:
        p, q = op.injections()
        mlf_p, mlf_q = op.loss_factors("pq")
        marginal = self._by_user(mlf_p[None], mlf_q[None], p, q)[0]
        shares = allocate_losses(losses_kw, marginal)
        pen, contrib = self._violations(op, vm, loading, p, q, voltage_band,
                                        voltage_penalty_per_pu, overload_penalty_per_pct)
        # the DSO is a user like the microgrids: its loads' push is its share, charged to
        # nobody, so a microgrid never pays for what the feeder's own loads cause
        if len(pen):
            alloc = allocate_violations(pen, contrib)
            dso = float(alloc[-1] + unallocated_penalty(pen, contrib))
        else:  # the common case: nothing violated
            alloc, dso = np.zeros(contrib.shape[1]), 0.0
        lf_pcc = op.loss_factors(self.pcc_lv)[0]
        return NetworkCostResult(losses_kw, shares[:-1], float(shares[-1]), alloc[:-1],
                                 float(pen.sum()), dso, lf_pcc)

    def _violations(self, op: OperatingPoint, vm_all: np.ndarray, loading: np.ndarray,
                    p: np.ndarray, q: np.ndarray, band: tuple[float, float], per_pu: float,
                    per_pct: float) -> tuple[np.ndarray, np.ndarray]:
        """Penalties ``(E,)`` of the violated shared elements and contributions ``(E, N+1)``."""
        lo, hi = band
        vm = vm_all[self.feeder_buses]
        over, under = vm > hi, vm < lo
        ld = loading[self.branches]
        hot = ld > 100.0
        pens, contribs = [], []
        vbus = self.feeder_buses[over | under]
        if len(vbus):
            dp, dq = op.voltage(vbus, "pq")
            v = vm_all[vbus]
            sign = np.where(v > hi, 1.0, -1.0)
            pens.append(per_pu * np.where(sign > 0, v - hi, lo - v))
            contribs.append(sign[:, None] * self._by_user(dp, dq, p, q))
        if hot.any():
            dp, dq = op.loading(self.branches[hot], "pq")
            pens.append(per_pct * (ld[hot] - 100.0))
            contribs.append(self._by_user(dp, dq, p, q))
        N1 = self.onehot.shape[1]
        if not pens:
            return np.zeros(0), np.zeros((0, N1))
        return np.concatenate(pens), np.concatenate(contribs)


# ---------------------------------------------------------------------- env hook


@dataclass(frozen=True)
class NetworkCostSettings:
    """The env's switches for network costs (config keys of the same names).

    ``network_costs``: charge ``network_losses`` and ``network_violation`` (off by default,
    on in the shared-feeder scenarios); ``loss_price``: $/kWh of allocated losses (None: the
    step's retail price); ``network_fee_per_kwh_per_ohm``: the P2P network-use fee rate
    (0: none).
    """

    network_costs: bool = False
    loss_price: float | None = None
    network_fee_per_kwh_per_ohm: float = 0.0

    @property
    def active(self) -> bool:
        return self.network_costs or self.network_fee_per_kwh_per_ohm > 0


class EnvNetworkCosts:
    """What an env calls: the pair fees for its market, and each step's cost terms."""

    def __init__(self, settings: NetworkCostSettings, network: MicrogridNetwork,
                 model: NetworkModel, voltage_band: tuple[float, float],
                 voltage_penalty_per_pu: float, overload_penalty_per_pct: float) -> None:
        self.settings = settings
        self.costs = NetworkCosts(network, model)
        self._rates = (tuple(voltage_band), float(voltage_penalty_per_pu),
                       float(overload_penalty_per_pct))
        n = len(self.costs.names)
        self._zero = [dict.fromkeys(NETWORK_COST_TERMS, 0.0) for _ in range(n)]

    def pair_fees(self) -> PairFees | None:
        rate = self.settings.network_fee_per_kwh_per_ohm
        return self.costs.pair_fees(rate) if rate > 0 else None

    def step(self, pf: PFResult, converged: bool, retail_price: float, dt_hours: float
             ) -> tuple[list[dict[str, float]], dict[str, float]]:
        """Per-microgrid cost terms ($) and shared infos of one step.

        A failed solve has no operating point to allocate: the terms are 0 (the failure
        penalty of ``powergrid.envs.safety`` already charges every microgrid).
        """
        if not self.settings.network_costs:
            return [], {}
        if not converged:
            return self._failed()
        return self._terms(self.costs.evaluate(pf, *self._rates), retail_price, dt_hours)

    def step_voltages(self, V: np.ndarray | None, converged: bool, retail_price: float,
                      dt_hours: float, losses_mw: float | None = None
                      ) -> tuple[list[dict[str, float]], dict[str, float]]:
        """:meth:`step` from a row's internal complex voltages (batched envs)."""
        if not self.settings.network_costs:
            return [], {}
        if not converged or V is None:
            return self._failed()
        return self._terms(self.costs.evaluate_voltages(V, *self._rates, losses_mw=losses_mw),
                           retail_price, dt_hours)

    def _failed(self) -> tuple[list[dict[str, float]], dict[str, float]]:
        return [dict(z) for z in self._zero], dict.fromkeys(NETWORK_DSO_KEYS, 0.0)

    def _terms(self, res: NetworkCostResult, retail_price: float, dt_hours: float
               ) -> tuple[list[dict[str, float]], dict[str, float]]:
        price = retail_price if self.settings.loss_price is None else self.settings.loss_price
        terms = [{"network_losses": float(share) * dt_hours * price,
                  "network_violation": float(pen)}
                 for share, pen in zip(res.loss_share_kw, res.violation_penalty)]
        return terms, {"network_losses_dso_kw": res.dso_loss_share_kw,
                       "network_violation_dso": res.violation_dso}
