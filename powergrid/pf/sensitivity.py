"""Exact first-order sensitivities of an AC operating point: losses, voltages, loadings.

Why: network costs need to know *who* moves the losses, a bus voltage or a branch loading,
and by how much. At a solved state of a :class:`~powergrid.pf.model.NetworkModel` the
power-flow Jacobian ``J = d(P, Q)_pq / d(theta, |V|)_pq`` (polar, the slack held fixed) gives
every such derivative exactly for the AC model; each quantity ``f(theta, |V|)`` costs one
adjoint solve ``J^T mu = df/dx`` on one LU factorisation per operating point.

Conventions. Injections are in MW / Mvar at a pandapower bus (``net.bus`` row), generation
positive (a load's +1 MW is an injection of -1 MW); the slack bus absorbs the balance, so
every sensitivity to an injection *at* the slack (or at a dead bus) is 0.

* ``losses`` are the whole network's active losses, ``sum_i Re(S_i)`` over all buses
  (the solvers' ``losses_mw``): ``dL/dP_k = 1 + dP_slack/dP_k`` (the marginal loss factor),
  ``dL/dQ_k = dP_slack/dQ_k``.
* voltages are magnitudes in pu, loadings in percent of the rating (the solvers'
  ``line_loading_percent`` / ``trafo_loading_percent``: the larger end; at an exact tie the
  from end). A branch carrying no current has no direction of increase: its derivative is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from powergrid.pf.model import NetworkModel

__all__ = ["OperatingPoint", "Sensitivity", "loss_factors_batch"]


class Sensitivity:
    """Builds :class:`OperatingPoint` objects for one compiled network.

    ``Sensitivity(model).at(vm_pu, va_degree)`` takes a solved state as the solvers report
    it (``PFResult.vm_pu`` / ``va_degree``, pandapower bus order).
    """

    def __init__(self, model: NetworkModel) -> None:
        self.model = model
        md = model
        self._pos = np.full(md.n, -1, dtype=np.int64)  # internal bus -> position in pq
        self._pos[md.pq] = np.arange(len(md.pq))
        live = md.bus_map >= 0
        self._live = live
        # a pandapower bus's column among the PQ injections (-1: slack or dead bus)
        self.bus_pos = np.where(live, self._pos[np.where(live, md.bus_map, 0)], -1)
        # branch rows (pandapower line rows, then trafo rows) -> compiled branch
        self._branch_of = np.full(md.n_line + md.n_trafo, -1, dtype=np.int64)
        self._branch_of[md.br_dest] = np.arange(len(md.br_dest))
        # The Jacobian's sparsity is Y_pp's (diagonal always included), four times: fix the
        # CSC pattern once and only refill its data at each operating point.
        self._Y = sp.csr_matrix(md.Y)
        npq = len(md.pq)
        Ypp = md.Y[np.ix_(md.pq, md.pq)].copy()
        r, c = np.nonzero((Ypp != 0) | np.eye(npq, dtype=bool))
        self._ij = (md.pq[r], md.pq[c])
        self._y = Ypp[r, c]
        self._diag = np.flatnonzero(r == c)[np.argsort(r[r == c])]  # entry of (k, k)
        rows = np.concatenate([r, r, r + npq, r + npq])
        cols = np.concatenate([c, c + npq, c, c + npq])
        order = sp.csc_matrix((np.arange(1, len(rows) + 1, dtype=float), (rows, cols)),
                              shape=(2 * npq, 2 * npq))
        self._J = order.copy()
        self._perm = order.data.astype(np.int64) - 1  # csc data slot <- our entry

    def voltages(self, vm_pu: np.ndarray, va_degree: np.ndarray) -> np.ndarray:
        """Internal complex voltages (n,) from pandapower-ordered magnitudes and angles."""
        return self.model.voltages_from(vm_pu, va_degree)

    def at(self, vm_pu: np.ndarray, va_degree: np.ndarray) -> OperatingPoint:
        """Factorise the Jacobian at one solved state."""
        return self.at_voltages(self.voltages(vm_pu, va_degree))

    def at_voltages(self, V: np.ndarray) -> OperatingPoint:
        """The same from internal complex voltages ``(n,)`` (``model.full_voltages`` of a
        solver's PQ-bus state), for callers that hold the state rather than a PFResult."""
        V = np.asarray(V, dtype=complex)
        if V.shape != (self.model.n,):
            raise ValueError(f"V must be the ({self.model.n},) internal bus voltages, got "
                             f"shape {V.shape}")
        if not (np.all(np.isfinite(V)) and np.all(V != 0)):
            raise ValueError("the operating point is not finite (a failed power flow?)")
        md = self.model
        I = self._Y @ V  # noqa: E741
        i, j = self._ij
        cyv = np.conj(self._y * V[j])                # conj(Y_ij V_j) over the nonzeros
        d_va = -1j * V[i] * cyv                      # dS_i/dtheta_j, off the diagonal part
        d_vm = V[i] * cyv / np.abs(V[j])             # dS_i/d|V_j|
        pq = md.pq
        dg = self._diag
        d_va[dg] += 1j * V[pq] * np.conj(I[pq])
        d_vm[dg] += np.conj(I[pq]) * V[pq] / np.abs(V[pq])
        vals = np.concatenate([d_va.real, d_vm.real, d_va.imag, d_vm.imag])
        # Sparse LU (SuperLU): a feeder's Jacobian is sparse, and a dense LAPACK call on a
        # threaded BLAS stalls on a busy machine.
        J = self._J  # refilled in place: splu keeps its own copy of the matrix
        J.data[:] = vals[self._perm]
        s_ = md.slack
        ys = md.Y[s_, pq]
        cys = np.conj(ys * V[pq])
        g_slack = np.concatenate([(-1j * V[s_] * cys).real,
                                  (V[s_] * cys / np.abs(V[pq])).real])
        return OperatingPoint(self, V, I, splu(J, permc_spec="MMD_AT_PLUS_A"), g_slack)


@dataclass(frozen=True, eq=False)
class OperatingPoint:
    """One factorised Jacobian; every method is an adjoint solve on it."""

    sens: Sensitivity
    V: np.ndarray           # (n,) internal complex voltages
    I: np.ndarray  # noqa: E741  (n,) bus current injections Y V
    lu: object              # SuperLU factor of J (2 n_pq square)
    g_slack: np.ndarray     # d P_slack / d(theta, |V|)_pq

    def _adjoint(self, grad: np.ndarray) -> np.ndarray:
        """``d f / d(P, Q)_pq`` (per unit) for ``grad = d f / d(theta, |V|)_pq``, (..., 2 n_pq)."""
        g = np.atleast_2d(grad)
        return self.lu.solve(np.ascontiguousarray(g.T), trans="T").T

    def _to_buses(self, d_pq: np.ndarray, buses: Sequence[int] | str | None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Split (k, 2 n_pq) per-unit derivatives into (k, columns) MW / Mvar ones.

        Columns: pandapower bus rows ``buses`` (None: all), or ``"pq"`` for the PQ buses
        in the model's solve order (each internal bus once, as :meth:`injections`).
        """
        sens = self.sens
        npq = len(sens.model.pq)
        base = sens.model.base_mva
        if isinstance(buses, str):
            if buses != "pq":
                raise ValueError(f"buses must be bus rows, None or 'pq', got {buses!r}")
            return d_pq[:, :npq] / base, d_pq[:, npq:] / base
        pos = sens.bus_pos if buses is None else sens.bus_pos[np.asarray(buses, dtype=np.int64)]
        ok = pos >= 0
        dp = np.zeros((d_pq.shape[0], len(pos)))
        dq = np.zeros_like(dp)
        dp[:, ok] = d_pq[:, pos[ok]] / base
        dq[:, ok] = d_pq[:, npq + pos[ok]] / base
        return dp, dq

    def injections(self) -> tuple[np.ndarray, np.ndarray]:
        """Net injections ``(P, Q)`` (MW, Mvar, generation > 0) at the PQ buses in solve
        order, from the state itself: every load, device and constant element included."""
        md = self.sens.model
        S = self.V * np.conj(self.I)
        return S[md.pq].real * md.base_mva, S[md.pq].imag * md.base_mva

    def losses_mw(self) -> float:
        """The network's active losses, ``sum_i Re(V_i conj(I_i))`` over all buses, MW."""
        return float(np.sum(self.V * np.conj(self.I)).real * self.sens.model.base_mva)

    def bus_vm(self) -> np.ndarray:
        """``|V|`` per pandapower bus (0 for dead buses, as the fast solver reports)."""
        md = self.sens.model
        out = np.zeros(md.n_bus)
        ok = self.sens._live
        out[ok] = np.abs(self.V[md.bus_map[ok]])
        return out

    def branch_loading(self) -> np.ndarray:
        """Loading in % per line row, then per trafo row (the solvers' definition)."""
        md = self.sens.model
        V = self.V
        Vf, Vt = V[md.br_from], V[md.br_to]
        y = md.br_y
        af = np.abs(y[0] * Vf + y[1] * Vt) * md.br_kf
        at_ = np.abs(y[2] * Vf + y[3] * Vt) * md.br_kt
        af = np.where(md.br_power, af * np.abs(Vf), af)
        at_ = np.where(md.br_power, at_ * np.abs(Vt), at_)
        out = np.zeros(md.n_line + md.n_trafo)
        out[md.br_dest] = np.maximum(af, at_)
        return out

    def loss_factors(self, buses: Sequence[int] | str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Marginal loss factors ``(dL/dP, dL/dQ)`` per bus (MW/MW, MW/Mvar).

        ``buses``: pandapower bus rows (default all) or ``"pq"`` (see :meth:`_to_buses`).
        """
        npq = len(self.sens.model.pq)
        d = self._adjoint(self.g_slack)  # dP_slack / d(P, Q)_pq, per unit
        d[:, :npq] += 1.0                # every PQ injection appears once in sum Re(S)
        dp, dq = self._to_buses(d, buses)
        return dp[0], dq[0]

    def voltage(self, at: Sequence[int], buses: Sequence[int] | str | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """``(d|V|/dP, d|V|/dQ)`` (pu/MW, pu/Mvar): rows the buses ``at``, columns ``buses``."""
        sens = self.sens
        npq = len(sens.model.pq)
        rows = sens.bus_pos[np.asarray(at, dtype=np.int64)]
        grad = np.zeros((len(rows), 2 * npq))
        ok = rows >= 0  # the slack's magnitude is fixed: zero rows
        grad[np.flatnonzero(ok), npq + rows[ok]] = 1.0
        return self._to_buses(self._adjoint(grad), buses)

    def loading(self, branches: Sequence[int], buses: Sequence[int] | str | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """``(d loading/dP, d loading/dQ)`` (%/MW, %/Mvar) for branch rows ``branches``
        (pandapower line rows, then ``n_line + trafo row``); columns ``buses``."""
        sens = self.sens
        md = sens.model
        npq = len(md.pq)
        k = sens._branch_of[np.asarray(branches, dtype=np.int64)]
        grad = np.zeros((len(k), 2 * npq))
        V = self.V
        for r, b in enumerate(k):
            if b < 0:  # out of service: always 0 %
                continue
            f, t = md.br_from[b], md.br_to[b]
            y = md.br_y[:, b]
            i_f = y[0] * V[f] + y[1] * V[t]
            i_t = y[2] * V[f] + y[3] * V[t]
            af, at_ = abs(i_f) * md.br_kf[b], abs(i_t) * md.br_kt[b]
            if md.br_power[b]:
                af, at_ = af * abs(V[f]), at_ * abs(V[t])
            use_from = af >= at_
            cur, end, k_end = (i_f, f, md.br_kf[b]) if use_from else (i_t, t, md.br_kt[b])
            yf, yt = (y[0], y[1]) if use_from else (y[2], y[3])
            if abs(cur) == 0.0:
                continue
            u = np.conj(cur) / abs(cur)
            for bus, yb in ((f, yf), (t, yt)):
                p = sens._pos[bus]
                if p < 0:
                    continue
                Vb = V[bus]
                # d|I|/d theta = Re(conj(I)/|I| * y * j V), d|I|/d|V| = Re(... * y * V/|V|)
                d_th = (u * yb * 1j * Vb).real
                d_vm = (u * yb * Vb / abs(Vb)).real
                scale = k_end * (abs(V[end]) if md.br_power[b] else 1.0)
                grad[r, p] += scale * d_th
                grad[r, npq + p] += scale * d_vm
                if md.br_power[b] and bus == end:  # |S| = |V||I|: the |V| factor too
                    grad[r, npq + p] += abs(cur) * k_end
        return self._to_buses(self._adjoint(grad), buses)


def loss_factors_batch(sens: Sensitivity, vm_pu: np.ndarray, va_degree: np.ndarray,
                       buses: Sequence[int] | str | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Marginal loss factors of B solved states, ``(B, n_bus)`` each (row by row: one LU
    per state; ~0.1-1 ms a row at a few hundred buses)."""
    vm, va = np.atleast_2d(vm_pu), np.atleast_2d(va_degree)
    out = [sens.at(vm[b], va[b]).loss_factors(buses) for b in range(vm.shape[0])]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
