"""The core's power-flow stage: one warm-started solve per batch row.

:class:`BatchPowerFlow` for the fast solver; :class:`RowPowerFlow` for any other
``PowerFlowSolver`` (pandapower): one copy of the solver per row, solved row by row.

The fast path: the solver's network model, a leaner kernel.

It reads the solver's public :class:`~powergrid.pf.model.NetworkModel` (``solver.model``)
and its ``tol``/``max_iter``. Why not ``FastSolver.solve`` with a batch: it computes
outputs the env never reads (angles, branch flows). This kernel runs the *same* Z-bus
fixed point (the same sparse LU sweeps of ``model.lu`` in the same order, same start,
tolerance and stopping rule, one warm start per env, so a converged row's voltages equal
``FastSolver``'s bit for bit) in numba with the batch as the innermost, vectorisable loop, and computes only bus
voltages, line and transformer loadings and the slack exchange. Rows that fail to converge are re-solved
through ``FastSolver.solve`` (with its Newton fallback), as the scalar env would.
Without numba everything goes through ``FastSolver.solve``.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from powergrid.core.packing import f0, f1, f2, f3, i0, i1, pack
from powergrid.pf.fast import HAVE_NUMBA, FastSolver
from powergrid.pf.jit import announce_compilation, cache_depends_on
from powergrid.pf.model import NetworkModel

CHUNK = 128  # envs per block: keeps a block's working set in L1/L2


class BatchPF(NamedTuple):
    converged: np.ndarray     # (B,) bool
    vm_pu: np.ndarray         # (B, n_bus) in net.bus row order
    line_loading: np.ndarray  # (B, n_line) percent
    p_slack_mw: np.ndarray    # (B,)
    losses_mw: np.ndarray     # (B,)
    trafo_loading: np.ndarray  # (B, n_trafo) percent
    # (B, n) internal complex bus voltages of the model, when built with voltages=True
    # (what network costs linearise around); rows that did not converge hold NaN
    V: np.ndarray | None = None


class BatchPowerFlow:
    """One warm-started power flow per env of a batch, on ``solver``'s network."""

    def __init__(self, solver: FastSolver, num_envs: int, voltages: bool = False) -> None:
        self.solver = solver
        self.num_envs = num_envs
        self.model = model = solver.model
        self.voltages = voltages
        self.use_kernel = HAVE_NUMBA and solver.use_numba
        if not self.use_kernel:
            return
        #: the network model packed for :func:`solve_packed` (powergrid.core.packing)
        self.packed = pack(_kernel_args(model, solver.tol, solver.max_iter))
        announce_compilation(solve_packed)
        self._w = model.w
        self._n_bus = model.n_bus
        self._n_line = model.n_line
        self._n_branch = model.n_line + model.n_trafo
        self._V = np.empty((2, len(self._w), num_envs))
        self.reset(np.ones(num_envs, bool))

    @property
    def warm_start(self) -> np.ndarray:
        """(2, n_pq, B) real and imaginary PQ voltages each row starts from (in place)."""
        return self._V

    def reset(self, mask: np.ndarray) -> None:
        """Restart the warm start of the masked envs, like ``solver.reset()`` at env reset."""
        if self.use_kernel:
            self._V[0][:, mask] = self._w.real[:, None]
            self._V[1][:, mask] = self._w.imag[:, None]

    def solve(self, load_p: np.ndarray, load_q: np.ndarray, sgen_p: np.ndarray,
              storage_p: np.ndarray, live: np.ndarray | None = None,
              sgen_q: np.ndarray | None = None, storage_q: np.ndarray | None = None
              ) -> BatchPF:
        """Inputs are (B, n_element) set-points in MW/Mvar, as for ``FastSolver.solve``
        (sgen/storage reactive power optional: 0 when None)."""
        setpoints = [load_p, load_q, sgen_p, storage_p]
        if sgen_q is not None or storage_q is not None:  # the model's column order
            B = load_p.shape[0]
            setpoints += [np.zeros((B, sgen_p.shape[1])) if sgen_q is None else sgen_q,
                          np.zeros((B, storage_p.shape[1])) if storage_q is None else storage_q]
        if not self.use_kernel:
            return self._fallback(*setpoints)
        X = np.ascontiguousarray(np.concatenate(setpoints, axis=1))
        B = X.shape[0]
        conv = np.zeros(B, np.bool_)
        vm = np.zeros((B, self._n_bus))
        loading = np.zeros((B, self._n_branch))  # lines, then trafos
        slack = np.zeros((2, B))
        solve_packed(X, self._V, conv, vm, loading, slack, CHUNK, *self.packed)
        nl = self._n_line
        out = BatchPF(conv, vm, loading[:, :nl], slack[0], slack[1], loading[:, nl:],
                      self.kernel_voltages(conv))
        bad = np.flatnonzero(~conv)
        if len(bad):
            self.patch(out, bad, *setpoints)
        return out

    def patch(self, out: BatchPF, rows: np.ndarray, *setpoints: np.ndarray) -> None:
        """Re-solve non-converged rows with the full solver (Newton fallback included)."""
        sub = self._fallback(*(np.atleast_2d(a[rows]) for a in setpoints))
        out.converged[rows] = sub.converged
        out.vm_pu[rows] = sub.vm_pu
        out.line_loading[rows] = sub.line_loading
        out.p_slack_mw[rows] = sub.p_slack_mw
        out.losses_mw[rows] = sub.losses_mw
        out.trafo_loading[rows] = sub.trafo_loading
        if out.V is not None:
            out.V[rows] = sub.V
        # A failed iterate is no warm start (FastSolver restarts from w too).
        self.reset(np.isin(np.arange(self.num_envs), rows))

    def kernel_voltages(self, conv: np.ndarray) -> np.ndarray | None:
        """The kernel's PQ-bus state (its warm start, updated on converged rows) as
        internal voltages; NaN on rows that did not converge."""
        if not self.voltages:
            return None
        md = self.model
        V = np.full((self.num_envs, md.n), np.nan, complex)
        V[:, md.slack] = md.v_slack
        V[:, md.pq] = (self._V[0] + 1j * self._V[1]).T
        V[~conv] = np.nan
        return V

    def _fallback(self, *setpoints: np.ndarray) -> BatchPF:
        r = self.solver.solve(*setpoints)
        conv = np.asarray(r.converged, bool)
        V = (result_voltages(self.model, conv, r.vm_pu, r.va_degree) if self.voltages
             else None)
        return BatchPF(conv, r.vm_pu, r.line_loading_percent,
                       np.asarray(r.p_slack_mw, float), np.asarray(r.losses_mw, float),
                       r.trafo_loading_percent, V)


class RowPowerFlow:
    """Any solver (e.g. pandapower's ``runpp``) in B envs: one deep copy per row.

    With ``voltages=True`` it reports internal voltages of ``model`` (the solver's
    network compiled), from each row's magnitudes and angles. ``share`` (one row): that row
    is ``solver`` itself, not a copy (the scalar env's solver keeps its solved state).
    """

    def __init__(self, solver, num_envs: int, voltages: bool = False,
                 model: NetworkModel | None = None, share: bool = False) -> None:
        if share and num_envs != 1:
            raise ValueError(f"share=True needs num_envs=1, got {num_envs}")
        self.solvers = [solver] if share else [copy.deepcopy(solver) for _ in range(num_envs)]
        if voltages and model is None:
            model = getattr(solver, "model", None) or NetworkModel.from_net(solver.net)
        self.model = model if voltages else None

    def reset(self, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            self.solvers[i].reset()

    def solve(self, load_p: np.ndarray, load_q: np.ndarray, sgen_p: np.ndarray,
              storage_p: np.ndarray, live: np.ndarray | None = None,
              sgen_q: np.ndarray | None = None, storage_q: np.ndarray | None = None
              ) -> BatchPF:
        B = load_p.shape[0]
        s0 = self.solvers[0]
        V = None if self.model is None else np.full((B, self.model.n), np.nan, complex)
        out = BatchPF(np.zeros(B, bool), np.ones((B, len(s0.net.bus))),
                      np.zeros((B, len(s0.net.line))), np.zeros(B), np.zeros(B),
                      np.zeros((B, len(s0.net.trafo))), V)
        for i, solver in enumerate(self.solvers):
            if live is not None and not live[i]:
                continue
            r = solver.solve(load_p[i], load_q[i], sgen_p[i], storage_p[i],
                             None if sgen_q is None else sgen_q[i],
                             None if storage_q is None else storage_q[i])
            out.converged[i] = bool(r.converged)
            out.vm_pu[i], out.line_loading[i] = r.vm_pu, r.line_loading_percent
            out.p_slack_mw[i], out.losses_mw[i] = r.p_slack_mw, r.losses_mw
            out.trafo_loading[i] = r.trafo_loading_percent
            if V is not None:
                V[i] = result_voltages(self.model, out.converged[i:i + 1], r.vm_pu[None],
                                       r.va_degree[None])[0]
        return out


def result_voltages(model: NetworkModel, converged: np.ndarray, vm_pu: np.ndarray,
                    va_degree: np.ndarray) -> np.ndarray:
    """(B, n) internal voltages from (B, n_bus) solver results; NaN where not converged."""
    V = np.array([model.voltages_from(vm, va) for vm, va in zip(vm_pu, va_degree)],
                 complex).reshape(len(converged), model.n)
    V[~np.asarray(converged, bool)] = np.nan
    return V


def make_batch_power_flow(solver, num_envs: int, voltages: bool = False,
                          model: NetworkModel | None = None,
                          share: bool = False) -> BatchPowerFlow | RowPowerFlow:
    """The batched kernel for the fast solver, the per-row fallback for any other;
    ``voltages=True`` adds each row's internal voltages (``BatchPF.V``); ``share``: the
    per-row fallback's single row is ``solver`` itself (see :class:`RowPowerFlow`)."""
    if isinstance(solver, FastSolver):
        return BatchPowerFlow(solver, num_envs, voltages)
    return RowPowerFlow(solver, num_envs, voltages, model, share)


def _kernel_args(md: NetworkModel, tol: float, max_iter: int) -> tuple:
    """The network model as (re, im)-stacked float arrays, in ``_solve_kernel`` order."""
    yff, yft, ytf, ytt = md.br_y
    ends = np.array([[yff.real, yff.imag, yft.real, yft.imag],
                     [ytf.real, ytf.imag, ytt.real, ytt.imag]])  # (from/to end, 4, n_br)

    def ri(z: np.ndarray) -> np.ndarray:  # complex -> stacked (re, im) floats
        return np.ascontiguousarray(np.stack([np.real(z), np.imag(z)]))

    lu = md.lu
    return (
        ri(md.S0), md.in_pos, ri(md.in_coef), ri(md.w), float(tol), int(max_iter),
        lu.row_in, lu.col_out, lu.L_ptr, lu.L_idx, ri(lu.L_val), lu.U_ptr, lu.U_idx,
        ri(lu.U_val), ri(lu.U_dinv),
        md.pq, md.slack, np.array([md.v_slack.real, md.v_slack.imag]), md.n,
        md.bus_map, ends, md.br_from, md.br_to, md.br_kf, md.br_kt,
        md.br_power.astype(np.bool_), md.br_dest, md.n_line, ri(md.y_slack),
        np.array([md.slack_cons0.real, md.slack_cons0.imag]), ri(md.slack_M),
        float(md.total_cons0.real), np.real(md.total_M).copy(), float(md.base_mva),
    )


if HAVE_NUMBA:
    from numba import njit

    from powergrid.pf.fast import magnitude

    @njit(cache=True, inline="always")
    def _branch_current(y, q, fr, fi, tr, ti):  # pragma: no cover - compiled
        """|y_f V_f + y_t V_t| with y = (re f, im f, re t, im t) rows, as FastSolver's
        ``magnitude`` of the complex ``y_f * V_f + y_t * V_t`` (same operations, same
        rounding)."""
        cr = (y[0, q] * fr - y[1, q] * fi) + (y[2, q] * tr - y[3, q] * ti)
        ci = (y[0, q] * fi + y[1, q] * fr) + (y[2, q] * ti + y[3, q] * tr)
        return magnitude(cr, ci)

    @njit(cache=True, error_model="numpy")
    def _solve_kernel(X, V, conv, vm, loading, slack, chunk, S0, in_pos, in_coef, w, tol,
                      max_iter, row_in, col_out, L_ptr, L_idx, L_val, U_ptr, U_idx, U_val,
                      U_dinv, pq, s, vs, n, bus_map, ybr, fb, tb, cf, ct, pw, dest, n_line,
                      yslack, cons_slack0, mslack, cons_total0, mtotal,
                      base):  # pragma: no cover - compiled
        """Jacobi Z-bus iteration per env, batch-innermost; arrays are (re, im) stacked.

        Every float operation is FastSolver's (``powergrid.pf.fast._fixed_point_nb``) in
        split real form, in the same order: complex products as (ac - bd, ad + bc).
        """
        B, m = X.shape
        npq = w.shape[1]
        tol2 = tol * tol
        vmax2, vmin2 = 9.0, 0.0025  # |V| outside (0.05, 3) pu: running away (as FastSolver)
        for b0 in range(0, B, chunk):
            L = min(chunk, B - b0)
            Sr = np.empty((npq, L))
            Si = np.empty((npq, L))
            for i in range(npq):
                for k in range(L):
                    Sr[i, k] = S0[0, i]
                    Si[i, k] = S0[1, i]
            for j in range(m):  # each set-point feeds one bus
                p = in_pos[j]
                if p < 0:
                    continue
                for k in range(L):
                    x = X[b0 + k, j]
                    if x != 0.0:
                        Sr[p, k] += x * in_coef[0, j]
                        Si[p, k] += x * in_coef[1, j]
            vr = V[0, :, b0:b0 + L].copy()
            vi = V[1, :, b0:b0 + L].copy()
            br = np.empty((npq, L))
            bi = np.empty((npq, L))
            nr = np.empty((npq, L))
            ni = np.empty((npq, L))
            dmax = np.empty(L)
            bad = np.zeros(L, np.bool_)
            done = np.zeros(L, np.bool_)
            upd = np.zeros(L, np.bool_)
            for _ in range(max_iter):
                # b = conj(S / V) = conj(S) V / |V|^2, in the factors' row order
                for q in range(npq):
                    j = row_in[q]
                    for k in range(L):
                        inv = 1.0 / (vr[j, k] * vr[j, k] + vi[j, k] * vi[j, k])
                        br[q, k] = (Sr[j, k] * vr[j, k] + Si[j, k] * vi[j, k]) * inv
                        bi[q, k] = (Sr[j, k] * vi[j, k] - Si[j, k] * vr[j, k]) * inv
                for q in range(npq):  # L y = b (unit diagonal)
                    for e in range(L_ptr[q], L_ptr[q + 1]):
                        lr = L_val[0, e]
                        li = L_val[1, e]
                        c = L_idx[e]
                        for k in range(L):
                            pr = lr * br[c, k] - li * bi[c, k]
                            pi = lr * bi[c, k] + li * br[c, k]
                            br[q, k] = br[q, k] - pr
                            bi[q, k] = bi[q, k] - pi
                for q in range(npq - 1, -1, -1):  # U z = y
                    for e in range(U_ptr[q], U_ptr[q + 1]):
                        ur = U_val[0, e]
                        ui = U_val[1, e]
                        c = U_idx[e]
                        for k in range(L):
                            pr = ur * br[c, k] - ui * bi[c, k]
                            pi = ur * bi[c, k] + ui * br[c, k]
                            br[q, k] = br[q, k] - pr
                            bi[q, k] = bi[q, k] - pi
                    dr = U_dinv[0, q]
                    di = U_dinv[1, q]
                    for k in range(L):
                        ar = br[q, k]
                        ai = bi[q, k]
                        br[q, k] = ar * dr - ai * di
                        bi[q, k] = ar * di + ai * dr
                dmax[:] = 0.0
                for i in range(npq):
                    c = col_out[i]
                    for k in range(L):
                        ar = br[c, k] + w[0, i]
                        ai = bi[c, k] + w[1, i]
                        m2 = ar * ar + ai * ai
                        if not (m2 < vmax2 and m2 > vmin2):
                            bad[k] = True
                        er = ar - vr[i, k]
                        ei = ai - vi[i, k]
                        e = er * er + ei * ei
                        if e > dmax[k]:
                            dmax[k] = e
                        nr[i, k] = ar
                        ni[i, k] = ai
                # Finished rows stay frozen so each matches its own single solve; the
                # copy runs batch-innermost (row by row it strides through the block)
                for k in range(L):
                    upd[k] = not (done[k] or bad[k])
                for i in range(npq):
                    for k in range(L):
                        if upd[k]:
                            vr[i, k] = nr[i, k]
                            vi[i, k] = ni[i, k]
                active = 0
                for k in range(L):
                    if upd[k]:
                        if dmax[k] < tol2:
                            done[k] = True
                        else:
                            active += 1
                if active == 0:
                    break
            Vr = np.empty(n)
            Vi = np.empty(n)
            for k in range(L):
                b = b0 + k
                conv[b] = done[k]
                if not done[k]:
                    continue
                for i in range(npq):
                    V[0, i, b] = vr[i, k]
                    V[1, i, b] = vi[i, k]
                    Vr[pq[i]] = vr[i, k]
                    Vi[pq[i]] = vi[i, k]
                Vr[s] = vs[0]
                Vi[s] = vs[1]
                for q in range(bus_map.shape[0]):
                    if bus_map[q] >= 0:
                        vm[b, q] = magnitude(Vr[bus_map[q]], Vi[bus_map[q]])
                for q in range(fb.shape[0]):
                    f = fb[q]
                    t = tb[q]
                    af = _branch_current(ybr[0], q, Vr[f], Vi[f], Vr[t], Vi[t]) * cf[q]
                    at = _branch_current(ybr[1], q, Vr[f], Vi[f], Vr[t], Vi[t]) * ct[q]
                    if pw[q]:
                        af *= magnitude(Vr[f], Vi[f])
                        at *= magnitude(Vr[t], Vi[t])
                    loading[b, dest[q]] = max(af, at)  # lines, then trafos
                # slack injection V_s * conj(Y_s . V) plus the demand at the slack bus
                yr = 0.0
                yi = 0.0
                for j in range(n):
                    yr += yslack[0, j] * Vr[j] - yslack[1, j] * Vi[j]
                    yi += yslack[0, j] * Vi[j] + yslack[1, j] * Vr[j]
                p_sl = Vr[s] * yr + Vi[s] * yi + cons_slack0[0]
                cons = cons_total0
                for j in range(m):
                    p_sl += X[b, j] * mslack[0, j]
                    cons += X[b, j] * mtotal[j]
                slack[0, b] = p_sl * base
                slack[1, b] = p_sl * base - cons * base

    @njit(cache=True)
    def solve_packed(X, V, conv, vm, loading, slack, chunk, fv, iv,
                     h):  # pragma: no cover - compiled
        """:func:`_solve_kernel` on the packed model (``BatchPowerFlow.packed``, in the
        order of ``_kernel_args``): 10 arguments instead of 41."""
        _solve_kernel(X, V, conv, vm, loading, slack, chunk, f2(fv, h, 0), i1(iv, h, 1),
                      f2(fv, h, 2), f2(fv, h, 3), f0(fv, h, 4), i0(iv, h, 5), i1(iv, h, 6),
                      i1(iv, h, 7), i1(iv, h, 8), i1(iv, h, 9), f2(fv, h, 10), i1(iv, h, 11),
                      i1(iv, h, 12), f2(fv, h, 13), f2(fv, h, 14), i1(iv, h, 15),
                      i0(iv, h, 16), f1(fv, h, 17), i0(iv, h, 18), i1(iv, h, 19),
                      f3(fv, h, 20), i1(iv, h, 21), i1(iv, h, 22), f1(fv, h, 23),
                      f1(fv, h, 24), i1(iv, h, 25), i1(iv, h, 26), i0(iv, h, 27),
                      f2(fv, h, 28), f1(fv, h, 29), f2(fv, h, 30), f0(fv, h, 31),
                      f1(fv, h, 32), f0(fv, h, 33))

    # the kernels inline FastSolver's magnitude: recompile when fast.py changes
    cache_depends_on((_solve_kernel, solve_packed), "powergrid.pf.fast")

else:  # pragma: no cover - numba missing: BatchPowerFlow uses FastSolver.solve instead
    solve_packed = None
