"""Fast AC power flow for fixed-topology radial/weakly-meshed grids.

Why: ``pandapower.runpp`` costs tens of ms per call, far too slow for RL
(thousands of steps/s). With one slack bus and only PQ buses the power flow is
the implicit Z-bus fixed point

    V_pq = Z_pp · conj(S_pq / V_pq) + w,   Z_pp = inv(Y_pp),   w = -Z_pp Y_ps V_s

which converges in ~10 cheap iterations on distribution feeders. The network is a
:class:`~powergrid.pf.model.NetworkModel` (pandapower's own Ybus, branch admittances
and bus ordering, compiled once). The compiled kernel applies ``Z_pp`` as the sparse LU
sweeps of ``model.lu`` (no fill-in on radial feeders: O(n) per iteration instead of the
dense O(n^2)) and adds each set-point to its one bus (``model.in_pos``) instead of a dense
``x @ M_T``. A polar Newton-Raphson is the fallback when the fixed point fails (very heavy
loading); it stops as soon as |V| leaves (0.05, 3) pu or its mismatch sets no new low for
``_NEWTON_STALL`` steps, and uses no dense BLAS (sparse currents, SuperLU for the Jacobian).

Profile (issue 15): on the 27-bus network a single solve was ~40 % Python overhead
(``_prepare``'s generic broadcasting, concatenation, PFResult slicing: now a direct fill of
the input vector for 1-D set-points), ~30 % the dense ``x @ M_T`` injections and dense
``Z`` products. On IEEE-34 (75 buses, one 74x74 block) random operating points beyond the
feeder's loadability (pandapower fails on the same points) ran the fixed point's 50
iterations and then 30 dense Newton iterations whose BLAS calls (``Y @ V``, ``solve``)
took milliseconds each on a loaded machine; that, not the fixed point, was the 126 solves/s.

Scope: see :mod:`powergrid.pf.model` (one ext_grid, no PV elements, constant-power
loads, frozen topology). Other constant injections (``ward``, ``motor``, asymmetric
loads...) are kept at their construction-time values. Out-of-service or isolated buses
are reported as ``vm_pu = va_degree = 0`` (pandapower reports NaN).
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import numpy as np
import pandapower as pp
from scipy.sparse import csc_matrix, csr_matrix
from scipy.sparse.linalg import MatrixRankWarning, spsolve

from powergrid.pf.base import PFResult, PowerFlowSolver
from powergrid.pf.jit import announce_compilation
from powergrid.pf.model import NetworkModel

try:  # numba is an optional extra: the numpy path is only a few x slower per solve.
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False
    warnings.warn("numba is not importable: the fast power flow falls back to numpy and runs "
                  "2-3x slower; numba is a dependency of heron-grid, reinstall it "
                  "(pip install numba)", RuntimeWarning, stacklevel=2)

__all__ = ["FastSolver", "HAVE_NUMBA", "magnitudes"]


def magnitudes(z: np.ndarray) -> np.ndarray:
    """``|z|`` as ``sqrt(re^2 + im^2)``: the one formula for every reported magnitude
    (bus voltages, branch currents) of every solver here (FastSolver's numpy and numba
    paths, the batch kernel's ``magnitude``), so they agree bit for bit. Unlike ``hypot``
    it has no overflow guard, and costs a sixth as much; power-flow magnitudes are O(1)
    per unit, where both are within an ulp of the exact value."""
    return np.sqrt(z.real * z.real + z.imag * z.imag)

# |V| outside this band means the iteration is running away (or about to divide by ~0).
_VMAX, _VMIN = 3.0, 0.05
_NEWTON_STALL = 4
FIELDS = ("vm_pu", "va_degree", "line_p_from_mw", "line_loading_percent",
          "trafo_loading_percent", "p_slack_mw", "q_slack_mvar", "losses_mw")


def _fixed_point_np(
    Z: np.ndarray, w: np.ndarray, S: np.ndarray, V: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, int, int]:
    """Single-network Z-bus iteration. Returns (V, iterations, status 0=ok 1=max_iter 2=diverged)."""
    with np.errstate(all="ignore"):
        for it in range(1, max_iter + 1):
            Vn = Z @ np.conj(S / V) + w
            m = np.abs(Vn)
            if not (np.all(m < _VMAX) and np.all(m > _VMIN)):  # also catches NaN
                return V, it, 2
            d = np.max(np.abs(Vn - V))
            V = Vn
            if d < tol:
                return V, it, 0
    return V, max_iter, 1


def _newton(
    Y: np.ndarray, V: np.ndarray, S: np.ndarray, pq: np.ndarray, tol: float, max_iter: int,
    Y_sparse=None,
) -> tuple[np.ndarray, int, bool]:
    """Dense polar Newton-Raphson on PQ buses; rare fallback, so clarity beats speed.

    ``S`` is the specified complex injection (pu) for all buses, ``V`` the start.
    ``Y_sparse`` (Y as a scipy sparse matrix) computes the currents without a BLAS call,
    whose threads can stall a loaded machine for milliseconds.
    """
    Ymul = Y if Y_sparse is None else Y_sparse
    V = V.copy()
    npq = len(pq)
    best, stalled = np.inf, 0
    with np.errstate(all="ignore"):
        for it in range(max_iter + 1):
            I = Ymul @ V  # noqa: E741
            mis = (V * np.conj(I) - S)[pq]
            F = np.concatenate([mis.real, mis.imag])
            if not np.all(np.isfinite(F)):
                return V, it, False
            norm = np.max(np.abs(F))
            if norm < tol:
                return V, it, True
            # Near a solution Newton's mismatch falls quadratically; one that has not set a
            # new low in _NEWTON_STALL steps is past the loadability limit (no solution),
            # where the remaining iterations would only cost time (ms each at 75 buses).
            best, stalled = (norm, 0) if norm < best else (best, stalled + 1)
            if it == max_iter or stalled >= _NEWTON_STALL:
                break
            Vn = V / np.abs(V)
            dS_dVm = V[:, None] * np.conj(Y * Vn[None, :]) + np.diag(np.conj(I) * Vn)
            dS_dVa = 1j * V[:, None] * np.conj(np.diag(I) - Y * V[None, :])
            a = dS_dVa[np.ix_(pq, pq)]
            m = dS_dVm[np.ix_(pq, pq)]
            J = np.block([[a.real, m.real], [a.imag, m.imag]])
            # J has Y's sparsity: SuperLU is faster than dense LAPACK at 150 unknowns and
            # never hits a threaded BLAS's slow path on a loaded machine.
            with warnings.catch_warnings():
                warnings.simplefilter("error", MatrixRankWarning)
                try:
                    dx = spsolve(csc_matrix(J), -F)
                except (MatrixRankWarning, RuntimeError):
                    return V, it, False
            vm = np.abs(V[pq]) + dx[npq:]
            if not (np.all(vm < _VMAX) and np.all(vm > _VMIN)):  # running away, or NaN
                return V, it, False
            va = np.angle(V[pq]) + dx[:npq]
            V[pq] = vm * np.exp(1j * va)
    return V, max_iter, False


class _Packed:
    """The model's arrays stacked into the few contiguous arrays the kernels take.

    Why: a compiled call pays per argument to unbox it (and much more for tuples), and
    at ~30 buses that overhead is a large share of a whole solve. ``ints`` and ``cplx``
    concatenate the index arrays and complex vectors (layout in :func:`_unpack`).
    """

    def __init__(self, model: NetworkModel, tol: float, max_iter: int) -> None:
        md, lu = model, model.lu
        self.ints = np.ascontiguousarray(np.concatenate([
            md.pq, lu.row_in, lu.col_out, lu.L_ptr, lu.U_ptr, md.in_pos, lu.L_idx,
            lu.U_idx]).astype(np.int64))
        self.cplx = np.ascontiguousarray(np.concatenate([
            md.w, md.S0, md.in_coef, lu.L_val, lu.U_val, lu.U_dinv]).astype(np.complex128))
        self.bus_map = md.bus_map
        self.br_i = np.ascontiguousarray(
            np.stack([md.br_from, md.br_to, md.br_dest, md.br_power.astype(np.int64)]))
        self.br_y = np.ascontiguousarray(md.br_y)
        self.br_k = np.ascontiguousarray(np.stack([md.br_kf, md.br_kt]))
        self.slk = np.ascontiguousarray(np.stack([
            np.concatenate([[md.slack_cons0], md.slack_M]),
            np.concatenate([[md.total_cons0], md.total_M])]))
        self.y_slack = md.y_slack
        self.fpar = np.array([tol, md.base_mva, md.v_slack.real, md.v_slack.imag])
        self.ipar = np.array([md.slack, max_iter, md.n_line, md.n_trafo, md.n, len(md.pq),
                              md.n_inputs], np.int64)
        # result vector: vm | va | line p_from | line loading | trafo loading | p, q, losses
        nb, nl, nt = md.n_bus, md.n_line, md.n_trafo
        self.n_res = 2 * nb + 2 * nl + nt + 3
        edges = np.cumsum([0, nb, nb, nl, nl, nt])
        self.cuts = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]

    def args(self) -> tuple:
        return (self.ints, self.cplx, self.bus_map, self.br_i, self.br_y, self.br_k,
                self.slk, self.y_slack, self.fpar, self.ipar)

    def result(self, res: np.ndarray, converged, iterations) -> PFResult:
        """PFResult whose arrays are views of one (..., n_res) result buffer."""
        c = self.cuts
        if res.ndim == 1:  # the single-solve hot path: plain slices are cheaper
            return PFResult(converged, iterations, res[c[0]], res[c[1]], res[c[2]], res[c[3]],
                            res[c[4]], res[-3], res[-2], res[-1])
        return PFResult(converged, iterations, res[..., c[0]], res[..., c[1]], res[..., c[2]],
                        res[..., c[3]], res[..., c[4]], res[..., -3], res[..., -2], res[..., -1])


class FastSolver(PowerFlowSolver):
    """Z-bus fixed-point power flow with pandapower's exact network model.

    ``FastSolver(net)`` compiles the net into a :class:`NetworkModel`, public as
    ``self.model`` for other solvers of the same net (e.g. the vector env's batch power
    flow). Single solves are warm-started from the previous converged solution; batched
    solves per batch size.
    """

    _solved: ClassVar[bool] = False  # a single solve has run in this process

    def __init__(
        self,
        net: pp.pandapowerNet,
        *,
        tol: float = 1e-10,
        max_iter: int = 50,
        use_numba: bool | None = None,
        newton_fallback: bool = True,
        newton_max_iter: int = 30,
    ) -> None:
        super().__init__(net)
        self.model = NetworkModel.from_net(net)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.use_numba = HAVE_NUMBA if use_numba is None else (bool(use_numba) and HAVE_NUMBA)
        self.newton_fallback = newton_fallback
        self.newton_max_iter = int(newton_max_iter)
        self._packed = _Packed(self.model, self.tol, self.max_iter)
        self._kargs = self._packed.args()
        self._Y_sparse = csr_matrix(self.model.Y)
        self._x_default = np.concatenate(self._defaults)
        sizes = [len(d) for d in self._defaults]
        edges = np.cumsum([0, *sizes])
        self._x_slots = tuple((slice(int(a), int(b)), n) for a, b, n in
                              zip(edges[:-1], edges[1:], sizes))
        self.reset()

    # ------------------------------------------------------------------ solve
    def solve(self, load_p_mw: np.ndarray | None = None, load_q_mvar: np.ndarray | None = None,
              sgen_p_mw: np.ndarray | None = None, storage_p_mw: np.ndarray | None = None,
              sgen_q_mvar: np.ndarray | None = None,
              storage_q_mvar: np.ndarray | None = None) -> PFResult:
        """As :meth:`PowerFlowSolver.solve`; one env step's 1-D float64 set-points go
        straight into the input vector (the generic validation costs more than a solve)."""
        args = (load_p_mw, load_q_mvar, sgen_p_mw, storage_p_mw, sgen_q_mvar, storage_q_mvar)
        x = self._x_default.copy()
        for a, (where, size) in zip(args, self._x_slots):
            if a is None:
                continue
            if type(a) is not np.ndarray or a.shape != (size,) or a.dtype.char != "d":
                return super().solve(*args)  # batches, lists, other dtypes, bad shapes
            x[where] = a
        return self._solve_single(x)

    def reset(self) -> None:
        self._V_single = self.model.w.copy()
        self._V_batch: dict[int, np.ndarray] = {}

    def _solve(self, lp: np.ndarray, lq: np.ndarray, sp: np.ndarray, stp: np.ndarray,
               sq: np.ndarray, stq: np.ndarray, *, batched: bool) -> PFResult:
        X = np.concatenate([lp, lq, sp, stp, sq, stq], axis=1)  # (B, m)
        if batched:
            return self._solve_batch(X)
        return self._solve_single(X[0])

    def _solve_single(self, x: np.ndarray) -> PFResult:
        md = self.model
        if self.use_numba:
            # One compiled call for injections + iteration + results: at ~30 buses
            # numpy's per-call overhead would otherwise dominate the solve.
            if not FastSolver._solved:  # first solve of this process: loads or compiles
                # (a flag: the dispatcher's ``signatures`` costs as much as a solve)
                announce_compilation(_fixed_point_nb, _post_nb, _solve_nb)
                FastSolver._solved = True
            V = np.empty_like(self._V_single)
            res = np.zeros(self._packed.n_res)
            it, status = _solve_nb(x, self._V_single, V, res, *self._kargs)
            if status == 0:
                self._V_single = V
                return self._packed.result(res, True, it)
        else:
            V, it, status = _fixed_point_np(md.Z, md.w, md.injections(x), self._V_single,
                                            self.tol, self.max_iter)
        ok = status == 0
        if not ok and self.newton_fallback:
            V, it2, ok = self._newton_row(self._injections(x), self._V_single)
            it += it2
        if ok:
            self._V_single = V
        else:
            # The last iterate of a failed solve is no good warm start nor answer.
            V = md.w
            self._V_single = md.w.copy()
        # NaN/inf set-points must not leak into the slack/loss outputs of a failed solve.
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        res = self._results(V[None, :], x[None, :])
        return self._packed.result(res[0], bool(ok), int(it))

    def _solve_batch(self, X: np.ndarray) -> PFResult:
        md = self.model
        B = X.shape[0]
        start = self._V_batch.get(B)
        V0 = np.repeat(md.w[None, :], B, axis=0) if start is None else start
        if self.use_numba:
            # Row loop in compiled code beats numpy's vectorised temporaries at
            # these sizes and keeps every row identical to its single solve.
            V = np.empty_like(V0)
            res = np.zeros((B, self._packed.n_res))
            iters = np.empty(B, np.int64)
            status = np.empty(B, np.int64)
            _batch_nb(np.ascontiguousarray(X), V0, V, res, iters, status, *self._kargs)
            done = status == 0
        else:
            V, iters, done = self._iterate_np(X, V0)
            res = None
        failed = np.nonzero(~done)[0]
        for b in failed:
            ok = False
            if self.newton_fallback:
                Vb, it2, ok = self._newton_row(self._injections(X[b]), V0[b])
                iters[b] += it2
            if ok:
                V[b] = Vb
                done[b] = True
            else:
                V[b] = md.w
        self._V_batch[B] = V.copy()
        if res is None:
            res = self._results(V, np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0))
        elif len(failed):
            Xf = np.nan_to_num(X[failed], nan=0.0, posinf=0.0, neginf=0.0)
            res[failed] = self._results(V[failed], Xf)
        return self._packed.result(res, done, iters)

    def _iterate_np(self, X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised Jacobi fixed point over the batch; finished rows are frozen."""
        md = self.model
        B = X.shape[0]
        S = md.injections(X)  # (B, n_pq)
        done = np.zeros(B, dtype=bool)
        bad = np.zeros(B, dtype=bool)
        iters = np.full(B, self.max_iter, dtype=np.int64)
        ZT, w = md.Z.T, md.w
        with np.errstate(all="ignore"):
            for it in range(1, self.max_iter + 1):
                active = ~(done | bad)
                Vn = np.conj(S / V) @ ZT + w
                m = np.abs(Vn)
                blown = active & ~(np.all((m < _VMAX) & (m > _VMIN), axis=1))
                bad |= blown
                iters[blown] = it
                active &= ~blown
                d = np.max(np.abs(Vn - V), axis=1)
                # Freeze finished rows so each row matches its own single solve.
                V = np.where(active[:, None], Vn, V)
                newly = active & (d < self.tol)
                done |= newly
                iters[newly] = it
                if not np.any(~(done | bad)):
                    break
        return V, iters, done

    def _injections(self, x: np.ndarray) -> np.ndarray:
        """``model.injections(x)`` for one row, one bus per set-point (no BLAS call)."""
        md = self.model
        S = md.S0.copy()
        live = md.in_pos >= 0
        np.add.at(S, md.in_pos[live], x[live] * md.in_coef[live])
        return S

    def _newton_row(self, S_pq: np.ndarray, V0_pq: np.ndarray) -> tuple[np.ndarray, int, bool]:
        md = self.model
        V_full = md.full_voltages(V0_pq)
        S_full = np.zeros(md.n, dtype=complex)
        S_full[md.pq] = S_pq
        V_full, it, ok = _newton(md.Y, V_full, S_full, md.pq, self.tol, self.newton_max_iter,
                                 self._Y_sparse)
        ok = ok and bool(np.all(np.isfinite(V_full)))
        m = np.abs(V_full)
        ok = ok and bool(np.all((m < _VMAX) & (m > _VMIN)))
        return V_full[md.pq], it, ok

    # ---------------------------------------------------------------- results
    def _results(self, Vpq: np.ndarray, X: np.ndarray) -> np.ndarray:
        """(B, n_res) result vectors (numpy; the numba kernels write the same layout)."""
        md, c = self.model, self._packed.cuts
        B = Vpq.shape[0]
        res = np.zeros((B, self._packed.n_res))
        V = np.empty((B, md.n), dtype=complex)
        V[:, md.slack] = md.v_slack
        V[:, md.pq] = Vpq
        ok = md.bus_map >= 0
        Vb = V[:, md.bus_map[ok]]
        res[:, c[0]][:, ok] = magnitudes(Vb)
        res[:, c[1]][:, ok] = np.angle(Vb, deg=True)
        nl = md.n_line
        Vf = V[:, md.br_from]
        Vt = V[:, md.br_to]
        Yb = md.br_y
        If = Yb[0] * Vf + Yb[1] * Vt
        It = Yb[2] * Vf + Yb[3] * Vt
        af = magnitudes(If) * md.br_kf
        at = magnitudes(It) * md.br_kt
        if md.br_power.any():
            af = np.where(md.br_power, af * magnitudes(Vf), af)
            at = np.where(md.br_power, at * magnitudes(Vt), at)
        loading = np.zeros((B, nl + md.n_trafo))
        loading[:, md.br_dest] = np.maximum(af, at)
        p_from = np.zeros((B, nl + md.n_trafo))
        p_from[:, md.br_dest] = (Vf * np.conj(If)).real * md.base_mva
        s_inj = V[:, md.slack] * np.conj(V @ md.y_slack)
        s_slack = (s_inj + md.slack_cons0 + X @ md.slack_M) * md.base_mva
        cons_total = (md.total_cons0 + X @ md.total_M).real * md.base_mva
        res[:, c[2]] = p_from[:, :nl]
        res[:, c[3]] = loading[:, :nl]
        res[:, c[4]] = loading[:, nl:]
        res[:, -3] = s_slack.real
        res[:, -2] = s_slack.imag
        res[:, -1] = s_slack.real - cons_total
        return res


if HAVE_NUMBA:

    @njit(cache=True, inline="always")
    def magnitude(re, im):  # pragma: no cover - compiled
        """:func:`magnitudes` of one complex number given as (re, im)."""
        return math.sqrt(re * re + im * im)

    @njit(cache=True)
    def _unpack(ints, cplx, npq, m):  # pragma: no cover - compiled
        """Views of the packed model arrays (layout of ``_Packed``)."""
        n = npq
        pq, row_in, col_out = ints[:n], ints[n:2 * n], ints[2 * n:3 * n]
        L_ptr, U_ptr = ints[3 * n:4 * n + 1], ints[4 * n + 1:5 * n + 2]
        o = 5 * n + 2
        in_pos = ints[o:o + m]
        nl, nu = L_ptr[n], U_ptr[n]
        L_idx, U_idx = ints[o + m:o + m + nl], ints[o + m + nl:o + m + nl + nu]
        w, S0, in_coef = cplx[:n], cplx[n:2 * n], cplx[2 * n:2 * n + m]
        o = 2 * n + m
        L_val, U_val, U_dinv = cplx[o:o + nl], cplx[o + nl:o + nl + nu], cplx[o + nl + nu:]
        return (pq, row_in, col_out, L_ptr, U_ptr, in_pos, L_idx, U_idx, w, S0, in_coef,
                L_val, U_val, U_dinv)

    @njit(cache=True)
    def _fixed_point_nb(w, S, V, Vn, tol, max_iter, row_in, col_out, L_ptr, L_idx, L_val,
                        U_ptr, U_idx, U_val, U_dinv):  # pragma: no cover - compiled
        """Jacobi Z-bus iteration from ``V`` (left untouched); the iterate ends in ``Vn``.

        ``Z @ I`` runs as the two sparse triangular sweeps of :class:`SparseLU`.
        Returns (iterations, status 0=ok 1=max_iter 2=diverged).
        """
        n = w.shape[0]
        Va = V.copy()
        b = np.empty(n, np.complex128)
        # Squared magnitudes avoid a hypot per bus per iteration.
        tol2, vmax2, vmin2 = tol * tol, _VMAX * _VMAX, _VMIN * _VMIN
        for it in range(1, max_iter + 1):
            for k in range(n):
                # conj(S / V) = conj(S) V / |V|^2, in the factors' row order
                j = row_in[k]
                vr, vi = Va[j].real, Va[j].imag
                sr, si = S[j].real, S[j].imag
                inv = 1.0 / (vr * vr + vi * vi)
                b[k] = complex((sr * vr + si * vi) * inv, (sr * vi - si * vr) * inv)
            for k in range(n):  # L y = b (unit diagonal)
                acc = b[k]
                for q in range(L_ptr[k], L_ptr[k + 1]):
                    acc -= L_val[q] * b[L_idx[q]]
                b[k] = acc
            for k in range(n - 1, -1, -1):  # U z = y
                acc = b[k]
                for q in range(U_ptr[k], U_ptr[k + 1]):
                    acc -= U_val[q] * b[U_idx[q]]
                b[k] = acc * U_dinv[k]
            d = 0.0
            for i in range(n):
                v = b[col_out[i]] + w[i]
                ar, ai = v.real, v.imag
                m2 = ar * ar + ai * ai
                if not (m2 < vmax2 and m2 > vmin2):  # also false for NaN
                    Vn[:] = Va
                    return it, 2
                er = ar - Va[i].real
                ei = ai - Va[i].imag
                e2 = er * er + ei * ei
                if e2 > d:
                    d = e2
                Vn[i] = v
            if d < tol2:
                return it, 0
            Va[:] = Vn
        return max_iter, 1

    @njit(cache=True)
    def _post_nb(Vpq, x, res, pq, bus_map, br_i, br_y, br_k, slk, y_slack, fpar,
                 ipar):  # pragma: no cover - compiled
        """Results of one solve into ``res`` (zeros on entry), layout of ``_Packed``."""
        s, n_line, n = ipar[0], ipar[2], ipar[4]
        base = fpar[1]
        V = np.empty(n, dtype=np.complex128)
        V[s] = complex(fpar[2], fpar[3])
        for k in range(pq.shape[0]):
            V[pq[k]] = Vpq[k]
        nb = bus_map.shape[0]
        for k in range(nb):
            i = bus_map[k]
            if i >= 0:
                res[k] = magnitude(V[i].real, V[i].imag)
                res[nb + k] = np.degrees(np.arctan2(V[i].imag, V[i].real))
        o_pf, o_ll = 2 * nb, 2 * nb + n_line
        for k in range(br_i.shape[1]):
            f, t, dest = br_i[0, k], br_i[1, k], br_i[2, k]
            vf = V[f]
            vt = V[t]
            i_f = br_y[0, k] * vf + br_y[1, k] * vt
            i_t = br_y[2, k] * vf + br_y[3, k] * vt
            af = magnitude(i_f.real, i_f.imag) * br_k[0, k]
            at = magnitude(i_t.real, i_t.imag) * br_k[1, k]
            if br_i[3, k]:
                af *= magnitude(vf.real, vf.imag)
                at *= magnitude(vt.real, vt.imag)
            # lines then trafos: trafo loading follows the line loading block
            res[o_ll + dest] = max(af, at)
            if dest < n_line:
                res[o_pf + dest] = (vf * np.conj(i_f)).real * base
        acc = 0j
        for j in range(n):
            acc += y_slack[j] * V[j]
        s_sl = V[s] * np.conj(acc) + slk[0, 0]
        cons = slk[1, 0]
        for j in range(x.shape[0]):
            s_sl += x[j] * slk[0, j + 1]
            cons += x[j] * slk[1, j + 1]
        m = res.shape[0]
        res[m - 3] = s_sl.real * base
        res[m - 2] = s_sl.imag * base
        res[m - 1] = s_sl.real * base - cons.real * base

    @njit(cache=True)
    def _solve_nb(x, V0, V, res, ints, cplx, bus_map, br_i, br_y, br_k, slk, y_slack, fpar,
                  ipar):  # pragma: no cover - compiled
        """Fused single solve: injections, fixed point and (on success) results into res."""
        (pq, row_in, col_out, L_ptr, U_ptr, in_pos, L_idx, U_idx, w, S0, in_coef, L_val,
         U_val, U_dinv) = _unpack(ints, cplx, ipar[5], ipar[6])
        S = S0.copy()
        # Each set-point feeds one bus (M_T has one entry per row): the same sums, in the
        # same order, as the dense S0 + x @ M_T, without its zero products.
        for j in range(x.shape[0]):
            if x[j] != 0.0 and in_pos[j] >= 0:
                S[in_pos[j]] += x[j] * in_coef[j]
        it, status = _fixed_point_nb(w, S, V0, V, fpar[0], ipar[1], row_in, col_out, L_ptr,
                                     L_idx, L_val, U_ptr, U_idx, U_val, U_dinv)
        if status == 0:
            _post_nb(V, x, res, pq, bus_map, br_i, br_y, br_k, slk, y_slack, fpar, ipar)
        return it, status

    @njit(cache=True)
    def _batch_nb(X, V0, V, res, iters, status, ints, cplx, bus_map, br_i, br_y, br_k, slk,
                  y_slack, fpar, ipar):  # pragma: no cover - compiled
        """Row loop over :func:`_solve_nb`, writing into the (B, ...) outputs."""
        for b in range(X.shape[0]):
            iters[b], status[b] = _solve_nb(X[b], V0[b], V[b], res[b], ints, cplx, bus_map,
                                            br_i, br_y, br_k, slk, y_slack, fpar, ipar)
