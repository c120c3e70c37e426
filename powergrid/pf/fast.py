"""Fast AC power flow for fixed-topology radial/weakly-meshed grids.

Why: ``pandapower.runpp`` costs tens of ms per call, far too slow for RL
(thousands of steps/s). With one slack bus and only PQ buses the power flow is
the implicit Z-bus fixed point

    V_pq = Z_pp · conj(S_pq / V_pq) + w,   Z_pp = inv(Y_pp),   w = -Z_pp Y_ps V_s

which converges in ~10 cheap iterations on distribution feeders. Ybus, branch
admittances and the bus ordering are taken from pandapower itself (one internal
``runpp``), so shunts, line charging, trafo magnetising/taps/phase shift are
exactly pandapower's model. A dense Newton-Raphson is the fallback when the
fixed point fails (very heavy loading).

Scope (checked at construction, ValueError otherwise): exactly one in-service
``ext_grid`` and no voltage-controlled elements (``gen``, ``xward``, ``dcline``,
``svc``/``ssc``/``vsc``); loads must be constant-power (``const_z_*``/``const_i_*``
percent = 0); topology, switch states, ``in_service`` and ``scaling`` are frozen
at construction. Other constant injections (``ward``, ``motor``, asymmetric
loads...) are kept at their construction-time values. Out-of-service or isolated
buses are reported as ``vm_pu = va_degree = 0`` (pandapower reports NaN).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandapower as pp
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BASE_KV, PD, QD, VA, VM

from powergrid.pf.base import PFResult, PowerFlowSolver
from powergrid.pf.jit import announce_compilation

try:  # numba is an optional extra: the numpy path is only a few x slower per solve.
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False
    warnings.warn("numba is not importable: the fast power flow falls back to numpy and runs "
                  "2-3x slower; numba is a dependency of heron-grid, reinstall it "
                  "(pip install numba)", RuntimeWarning, stacklevel=2)

__all__ = ["FastSolver", "HAVE_NUMBA"]

_SQRT3 = np.sqrt(3.0)
# |V| outside this band means the iteration is running away (or about to divide by ~0).
_VMAX, _VMIN = 3.0, 0.05
FIELDS = ("vm_pu", "va_degree", "line_p_from_mw", "line_loading_percent",
          "trafo_loading_percent", "p_slack_mw", "q_slack_mvar", "losses_mw")
_UNSUPPORTED = ("gen", "xward", "dcline", "svc", "ssc", "vsc", "tcsc")


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


if HAVE_NUMBA:

    @njit(cache=True, fastmath={"reassoc", "contract"})
    def _zi(Zr, Zi, Ir, Ii, i):  # pragma: no cover - compiled
        """Row i of Z @ I in split real arithmetic; reassoc lets LLVM vectorise it."""
        ar = 0.0
        ai = 0.0
        for j in range(Ir.shape[0]):
            ar += Zr[i, j] * Ir[j] - Zi[i, j] * Ii[j]
            ai += Zr[i, j] * Ii[j] + Zi[i, j] * Ir[j]
        return ar, ai

    @njit(cache=True)
    def _fixed_point_nb(Zr, Zi, w, S, V, tol, max_iter):  # pragma: no cover - compiled
        """Numba twin of :func:`_fixed_point_np` (same Jacobi update, no temporaries)."""
        n = w.shape[0]
        V = V.copy()
        Vn = np.empty_like(V)
        Ir = np.empty(n)
        Ii = np.empty(n)
        # Squared magnitudes avoid a hypot per bus per iteration.
        tol2, vmax2, vmin2 = tol * tol, _VMAX * _VMAX, _VMIN * _VMIN
        for it in range(1, max_iter + 1):
            for j in range(n):
                # conj(S / V) = conj(S) V / |V|^2
                vr, vi = V[j].real, V[j].imag
                sr, si = S[j].real, S[j].imag
                inv = 1.0 / (vr * vr + vi * vi)
                Ir[j] = (sr * vr + si * vi) * inv
                Ii[j] = (sr * vi - si * vr) * inv
            d = 0.0
            for i in range(n):
                ar, ai = _zi(Zr, Zi, Ir, Ii, i)
                ar += w[i].real
                ai += w[i].imag
                m2 = ar * ar + ai * ai
                if not (m2 < vmax2 and m2 > vmin2):  # also false for NaN
                    return V, it, 2
                er = ar - V[i].real
                ei = ai - V[i].imag
                e2 = er * er + ei * ei
                if e2 > d:
                    d = e2
                Vn[i] = complex(ar, ai)
            V, Vn = Vn, V
            if d < tol2:
                return V, it, 0
        return V, max_iter, 1


def _newton(
    Y: np.ndarray, V: np.ndarray, S: np.ndarray, pq: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, int, bool]:
    """Dense polar Newton-Raphson on PQ buses; rare fallback, so clarity beats speed.

    ``S`` is the specified complex injection (pu) for all buses, ``V`` the start.
    """
    V = V.copy()
    npq = len(pq)
    with np.errstate(all="ignore"):
        for it in range(max_iter + 1):
            I = Y @ V  # noqa: E741
            mis = (V * np.conj(I) - S)[pq]
            F = np.concatenate([mis.real, mis.imag])
            if not np.all(np.isfinite(F)):
                return V, it, False
            if np.max(np.abs(F)) < tol:
                return V, it, True
            if it == max_iter:
                break
            Vn = V / np.abs(V)
            dS_dVm = V[:, None] * np.conj(Y * Vn[None, :]) + np.diag(np.conj(I) * Vn)
            dS_dVa = 1j * V[:, None] * np.conj(np.diag(I) - Y * V[None, :])
            a = dS_dVa[np.ix_(pq, pq)]
            m = dS_dVm[np.ix_(pq, pq)]
            J = np.block([[a.real, m.real], [a.imag, m.imag]])
            try:
                dx = np.linalg.solve(J, -F)
            except np.linalg.LinAlgError:
                return V, it, False
            vm = np.abs(V[pq]) + dx[npq:]
            va = np.angle(V[pq]) + dx[:npq]
            V[pq] = vm * np.exp(1j * va)
    return V, max_iter, False


class FastSolver(PowerFlowSolver):
    """Z-bus fixed-point power flow with pandapower's exact network model.

    Single solves are warm-started from the previous converged solution; batched
    solves are vectorised over the batch and warm-started per batch size.
    """

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
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.use_numba = HAVE_NUMBA if use_numba is None else (bool(use_numba) and HAVE_NUMBA)
        self.newton_fallback = newton_fallback
        self.newton_max_iter = int(newton_max_iter)
        self._build(net)
        self.reset()
        if self.use_numba:
            announce_compilation(_zi, _fixed_point_nb, _post_nb, _single_nb)  # scalar path

    # ------------------------------------------------------------------ build
    def _build(self, net_in: pp.pandapowerNet) -> None:
        _check_scope(net_in)
        net = copy.deepcopy(net_in)
        # Zero the controllable set-points: the Ybus does not depend on them and
        # the remaining bus PD/QD is then exactly the constant "other" demand.
        for table, cols in (("load", ("p_mw", "q_mvar")), ("sgen", ("p_mw", "q_mvar")),
                            ("storage", ("p_mw", "q_mvar"))):
            for c in cols:
                net[table][c] = 0.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # one solve only: pandapower's numba JIT (seconds) would not pay off here
                pp.runpp(net, numba=False)
        except Exception as exc:  # noqa: BLE001 - any failure means we cannot build
            raise ValueError(f"pandapower could not solve the no-load case: {exc}") from exc

        ppci = net._ppc["internal"]
        ref = np.asarray(ppci["ref"], dtype=np.int64)
        pv = np.asarray(ppci["pv"], dtype=np.int64)
        if len(ref) != 1 or len(pv) != 0:
            raise ValueError(
                f"FastSolver needs exactly one slack and no PV buses (got {len(ref)} ref, "
                f"{len(pv)} pv)"
            )
        bus = np.real(ppci["bus"])
        n = bus.shape[0]
        base = float(ppci["baseMVA"])
        Y = ppci["Ybus"].toarray()
        Yf = ppci["Yf"].toarray()
        Yt = ppci["Yt"].toarray()
        s = int(ref[0])
        pq = np.setdiff1d(np.arange(n), ref)

        Vs = bus[s, VM] * np.exp(1j * np.deg2rad(bus[s, VA]))
        Ypp = Y[np.ix_(pq, pq)]
        Z = np.linalg.inv(Ypp)
        self._Z = np.ascontiguousarray(Z)
        self._ZT = np.ascontiguousarray(Z.T)
        self._Zr = np.ascontiguousarray(Z.real)
        self._Zi = np.ascontiguousarray(Z.imag)
        self._w = -Z @ (Y[pq, s] * Vs)
        self._Y = Y
        self._Yslack = Y[s].copy()
        self._pq, self._s, self._Vs, self._n, self._base = pq, s, Vs, n, base

        # pandapower bus -> internal bus (-1: out of service / isolated / NONE type).
        lookup = net._pd2ppc_lookups["bus"]
        pd_bus = lookup[net.bus.index.to_numpy()]
        self._bus_map = np.where(pd_bus < n, pd_bus, -1)
        self._bus_ok = self._bus_map >= 0

        # Injections (pu, consumption sign) = other + X @ M with
        # X = [lp | lq | sgen p | st p | sgen q | st q]; the q blocks come last so callers
        # that pass only the first four blocks (the batched kernel) index the same columns.
        cons0 = (bus[:, PD] + 1j * bus[:, QD]) / base
        cols = []
        for table, sign, jq in (("load", 1.0, False), ("load", 1.0, True),
                                ("sgen", -1.0, False), ("storage", 1.0, False),
                                ("sgen", -1.0, True), ("storage", 1.0, True)):
            cols.append(self._incidence(net, table, sign, n) * (1j if jq else 1.0))
        M = np.concatenate(cols, axis=1) / base  # (n, m)
        self._M = M
        self._cons0 = cons0
        # Solver works with injections on PQ buses: S_pq = -(cons0 + X @ M)[pq].
        self._Spq0 = -cons0[pq]
        self._MpqT = np.ascontiguousarray(-M[pq].T)  # (m, n_pq)
        self._cons_slack0 = cons0[s]
        self._Mslack = M[s].copy()
        self._cons_total0 = cons0.sum()
        self._Mtotal = M.sum(axis=0)

        # Branch flows: pandapower orders ppc branches (line, trafo, ...) and the
        # internal model keeps only in-service rows (branch_is mask). Lines and
        # trafos are stacked into one branch set so results need one matmul per end.
        branch_is = np.asarray(ppci["branch_is"], dtype=bool)
        ppc2ppci = np.full(len(branch_is), -1, dtype=np.int64)
        ppc2ppci[branch_is] = np.arange(int(branch_is.sum()))
        br = np.real(ppci["branch"])
        self._n_bus_pd = len(net.bus)
        self._n_line = len(net.line)
        self._n_trafo = len(net.trafo)
        trafo_power = net._options.get("trafo_loading", "current") == "power"
        rows, dest, cf, ct, pw = [], [], [], [], []
        offset = 0
        for el in ("line", "trafo"):
            df = net[el]
            if len(df) and el in net._pd2ppc_lookups["branch"]:
                f, t = net._pd2ppc_lookups["branch"][el]
                r = ppc2ppci[f:t]
                ok = r >= 0  # out-of-service branches report 0 like pandapower
                r = r[ok]
                fb = br[r, F_BUS].astype(np.int64)
                tb = br[r, T_BUS].astype(np.int64)
                # |I| (pu) -> kA at each end, then -> percent of the element rating
                kf = base / (_SQRT3 * bus[fb, BASE_KV])
                kt = base / (_SQRT3 * bus[tb, BASE_KV])
                if el == "line":
                    imax = (df["max_i_ka"] * df["df"] * df["parallel"]).to_numpy(float)[ok]
                    with np.errstate(divide="ignore"):
                        inv = np.where(imax != 0, 100.0 / imax, np.inf)
                    cf.append(kf * inv)
                    ct.append(kt * inv)
                    pw.append(np.zeros(len(r), dtype=bool))
                else:
                    den = (df["sn_mva"] * df["parallel"] * df["df"]).to_numpy(float)[ok]
                    if trafo_power:  # |S| = |V||I| baseMVA
                        cf.append(np.full(len(r), base * 100.0) / den)
                        ct.append(np.full(len(r), base * 100.0) / den)
                    else:
                        cf.append(kf * df["vn_hv_kv"].to_numpy(float)[ok] * _SQRT3 * 100.0 / den)
                        ct.append(kt * df["vn_lv_kv"].to_numpy(float)[ok] * _SQRT3 * 100.0 / den)
                    pw.append(np.full(len(r), trafo_power))
                rows.append(r)
                dest.append(offset + np.nonzero(ok)[0])
            offset += len(df)
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        self._br_fb = br[r, F_BUS].astype(np.int64)
        self._br_tb = br[r, T_BUS].astype(np.int64)
        # A branch row of Yf/Yt only touches its two end buses: keep the 2x2 block.
        k = np.arange(len(r))
        self._br_Y = np.stack([Yf[r][k, self._br_fb], Yf[r][k, self._br_tb],
                               Yt[r][k, self._br_fb], Yt[r][k, self._br_tb]])
        self._br_cf = np.concatenate(cf) if cf else np.zeros(0)
        self._br_ct = np.concatenate(ct) if ct else np.zeros(0)
        self._br_pw = np.concatenate(pw) if pw else np.zeros(0, dtype=bool)
        self._br_dest = np.concatenate(dest) if dest else np.zeros(0, dtype=np.int64)
        self._post_args = (
            self._pq, int(s), complex(Vs), int(n), self._bus_map.astype(np.int64), self._br_Y,
            self._br_fb, self._br_tb, self._br_cf, self._br_ct, self._br_pw,
            self._br_dest, self._n_line, self._n_trafo, self._Yslack, complex(cons0[s]),
            self._Mslack, complex(self._cons_total0), self._Mtotal, base,
        )

    @staticmethod
    def _incidence(net: pp.pandapowerNet, table: str, sign: float, n: int) -> np.ndarray:
        """Dense (n_bus_internal, n_element) map of set-points to bus demand.

        Folds ``scaling``/``in_service`` in (frozen at construction) the same way
        pandapower builds bus PD/QD; elements on dead buses drop out as in pandapower.
        """
        df = net[table]
        C = np.zeros((n, len(df)))
        if len(df) == 0:
            return C
        ppc_bus = net._pd2ppc_lookups["bus"][df["bus"].to_numpy()]
        bus_live = net.bus.loc[df["bus"], "in_service"].to_numpy(bool)
        coef = sign * df["scaling"].to_numpy(float) * df["in_service"].to_numpy(bool) * bus_live
        ok = (ppc_bus < n) & (coef != 0)
        C[ppc_bus[ok], np.nonzero(ok)[0]] = coef[ok]
        return C

    # ------------------------------------------------------------------ solve
    def reset(self) -> None:
        self._V_single = self._w.copy()
        self._V_batch: dict[int, np.ndarray] = {}

    def _solve(self, lp: np.ndarray, lq: np.ndarray, sp: np.ndarray, stp: np.ndarray,
               sq: np.ndarray, stq: np.ndarray, *, batched: bool) -> PFResult:
        X = np.concatenate([lp, lq, sp, stp, sq, stq], axis=1)  # (B, m)
        if batched:
            return self._solve_batch(X)
        return self._solve_single(X[0])

    def _solve_single(self, x: np.ndarray) -> PFResult:
        if self.use_numba:
            # One compiled call for injections + iteration + results: at ~30 buses
            # numpy's per-call overhead would otherwise dominate the solve.
            V, it, status, out = _single_nb(
                x, self._Spq0, self._MpqT, self._Zr, self._Zi, self._w, self._V_single, self.tol,
                self.max_iter, self._post_args,
            )
            if status == 0:
                self._V_single = V
                return PFResult(True, it, *out)
            S = self._Spq0 + x @ self._MpqT
        else:
            S = self._Spq0 + x @ self._MpqT
            V, it, status = _fixed_point_np(
                self._Z, self._w, S, self._V_single, self.tol, self.max_iter
            )
        ok = status == 0
        if not ok and self.newton_fallback:
            V, it2, ok = self._newton_row(S, self._V_single)
            it += it2
        if ok:
            self._V_single = V
        else:
            # The last iterate of a failed solve is no good warm start nor answer.
            V = self._w
            self._V_single = self._w.copy()
        # NaN/inf set-points must not leak into the slack/loss outputs of a failed solve.
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        return self._results(V[None, :], x[None, :], np.array([ok]), np.array([it]), batched=False)

    def _solve_batch(self, X: np.ndarray) -> PFResult:
        B = X.shape[0]
        start = self._V_batch.get(B)
        V0 = np.repeat(self._w[None, :], B, axis=0) if start is None else start
        if self.use_numba:
            # Row loop in compiled code beats numpy's vectorised temporaries at
            # these sizes and keeps every row identical to its single solve.
            V, iters, status, fields = _batch_nb(
                np.ascontiguousarray(X), self._Spq0, self._MpqT, self._Zr, self._Zi, self._w, V0,
                self.tol, self.max_iter, self._post_args, self._n_bus_pd,
            )
            done = status == 0
            fields = list(fields)
        else:
            V, iters, done = self._iterate_np(X, V0)
            fields = None
        failed = np.nonzero(~done)[0]
        for b in failed:
            ok = False
            if self.newton_fallback:
                S_b = self._Spq0 + X[b] @ self._MpqT
                Vb, it2, ok = self._newton_row(S_b, V0[b])
                iters[b] += it2
            if ok:
                V[b] = Vb
                done[b] = True
            else:
                V[b] = self._w
        self._V_batch[B] = V.copy()
        if fields is None:
            if len(failed):
                X = np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)
            return self._results(V, X, done, iters, batched=True)
        if len(failed):
            Xf = np.nan_to_num(X[failed], nan=0.0, posinf=0.0, neginf=0.0)
            sub = self._results(V[failed], Xf, done[failed], iters[failed], batched=True)
            for dst, f in zip(fields, FIELDS):
                dst[failed] = getattr(sub, f)
        return PFResult(done, iters, *fields)

    def _iterate_np(self, X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised Jacobi fixed point over the batch; finished rows are frozen."""
        B = X.shape[0]
        S = self._Spq0 + X @ self._MpqT  # (B, n_pq)
        done = np.zeros(B, dtype=bool)
        bad = np.zeros(B, dtype=bool)
        iters = np.full(B, self.max_iter, dtype=np.int64)
        ZT, w = self._ZT, self._w
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

    def _newton_row(self, S_pq: np.ndarray, V0_pq: np.ndarray) -> tuple[np.ndarray, int, bool]:
        V_full = np.empty(self._n, dtype=complex)
        V_full[self._s] = self._Vs
        V_full[self._pq] = V0_pq
        S_full = np.zeros(self._n, dtype=complex)
        S_full[self._pq] = S_pq
        V_full, it, ok = _newton(self._Y, V_full, S_full, self._pq, self.tol, self.newton_max_iter)
        ok = ok and bool(np.all(np.isfinite(V_full)))
        m = np.abs(V_full)
        ok = ok and bool(np.all((m < _VMAX) & (m > _VMIN)))
        return V_full[self._pq], it, ok

    # ---------------------------------------------------------------- results
    def _results(
        self, Vpq: np.ndarray, X: np.ndarray, conv: np.ndarray, iters: np.ndarray, batched: bool
    ) -> PFResult:
        if not batched and self.use_numba:
            out = _post_nb(Vpq[0], X[0], self._post_args)
            return PFResult(bool(conv[0]), int(iters[0]), *out)
        B = Vpq.shape[0]
        V = np.empty((B, self._n), dtype=complex)
        V[:, self._s] = self._Vs
        V[:, self._pq] = Vpq

        vm = np.zeros((B, self._n_bus_pd))
        va = np.zeros((B, self._n_bus_pd))
        Vb = V[:, self._bus_map[self._bus_ok]]
        vm[:, self._bus_ok] = np.abs(Vb)
        va[:, self._bus_ok] = np.angle(Vb, deg=True)

        nl = self._n_line
        Vf = V[:, self._br_fb]
        Vt = V[:, self._br_tb]
        Yb = self._br_Y
        If = Yb[0] * Vf + Yb[1] * Vt
        It = Yb[2] * Vf + Yb[3] * Vt
        af = np.abs(If) * self._br_cf
        at = np.abs(It) * self._br_ct
        if self._br_pw.any():
            af = np.where(self._br_pw, af * np.abs(Vf), af)
            at = np.where(self._br_pw, at * np.abs(Vt), at)
        loading = np.zeros((B, nl + self._n_trafo))
        loading[:, self._br_dest] = np.maximum(af, at)
        p_from = np.zeros((B, nl + self._n_trafo))
        p_from[:, self._br_dest] = (Vf * np.conj(If)).real * self._base

        s_inj = V[:, self._s] * np.conj(V @ self._Yslack)
        s_slack = (s_inj + self._cons_slack0 + X @ self._Mslack) * self._base
        cons_total = (self._cons_total0 + X @ self._Mtotal).real * self._base
        p_slack = s_slack.real
        losses = p_slack - cons_total
        line_load, trafo_load, p_from = loading[:, :nl], loading[:, nl:], p_from[:, :nl]

        if batched:
            return PFResult(conv, iters, vm, va, p_from, line_load, trafo_load, p_slack,
                            s_slack.imag, losses)
        return PFResult(bool(conv[0]), int(iters[0]), vm[0], va[0], p_from[0], line_load[0],
                        trafo_load[0], float(p_slack[0]), float(s_slack.imag[0]),
                        float(losses[0]))


if HAVE_NUMBA:

    @njit(cache=True)
    def _post_nb(Vpq, x, args):  # pragma: no cover - compiled
        """Single-solve result extraction; numpy's per-call overhead dominates at this size."""
        (pq, s, Vs, n, bus_map, Ybr, fb, tb, cf, ct, pw, dest, n_line, n_trafo, Yslack,
         cons_slack0, Mslack, cons_total0, Mtotal, base) = args
        V = np.empty(n, dtype=np.complex128)
        V[s] = Vs
        for k in range(pq.shape[0]):
            V[pq[k]] = Vpq[k]
        nb_pd = bus_map.shape[0]
        vm = np.zeros(nb_pd)
        va = np.zeros(nb_pd)
        for k in range(nb_pd):
            i = bus_map[k]
            if i >= 0:
                vm[k] = abs(V[i])
                va[k] = np.degrees(np.arctan2(V[i].imag, V[i].real))
        loading = np.zeros(n_line + n_trafo)
        p_from = np.zeros(n_line + n_trafo)
        for k in range(fb.shape[0]):
            vf = V[fb[k]]
            vt = V[tb[k]]
            i_f = Ybr[0, k] * vf + Ybr[1, k] * vt
            i_t = Ybr[2, k] * vf + Ybr[3, k] * vt
            af = abs(i_f) * cf[k]
            at = abs(i_t) * ct[k]
            if pw[k]:
                af *= abs(V[fb[k]])
                at *= abs(V[tb[k]])
            loading[dest[k]] = max(af, at)
            p_from[dest[k]] = (V[fb[k]] * np.conj(i_f)).real * base
        acc = 0j
        for j in range(n):
            acc += Yslack[j] * V[j]
        s_sl = V[s] * np.conj(acc) + cons_slack0
        cons = cons_total0
        for j in range(x.shape[0]):
            s_sl += x[j] * Mslack[j]
            cons += x[j] * Mtotal[j]
        p_slack = s_sl.real * base
        return (vm, va, p_from[:n_line], loading[:n_line], loading[n_line:], p_slack,
                s_sl.imag * base, p_slack - cons.real * base)

    @njit(cache=True)
    def _single_nb(x, Spq0, MpqT, Zr, Zi, w, V0, tol, max_iter, post_args):  # pragma: no cover
        """Fused single solve: injections, fixed point and (on success) results."""
        S = Spq0.copy()
        for j in range(x.shape[0]):
            if x[j] != 0.0:
                for i in range(S.shape[0]):
                    S[i] += x[j] * MpqT[j, i]
        V, it, status = _fixed_point_nb(Zr, Zi, w, S, V0, tol, max_iter)
        return V, it, status, _post_nb(V, x, post_args)

    @njit(cache=True)
    def _batch_nb(X, Spq0, MpqT, Zr, Zi, w, V0, tol, max_iter, post_args, n_bus_pd):  # pragma: no cover
        """Row loop over :func:`_single_nb`, writing into preallocated (B, ...) outputs."""
        B = X.shape[0]
        n_line = post_args[12]
        n_trafo = post_args[13]
        V = np.empty_like(V0)
        iters = np.empty(B, dtype=np.int64)
        status = np.empty(B, dtype=np.int64)
        vm = np.empty((B, n_bus_pd))
        va = np.empty((B, n_bus_pd))
        pf = np.empty((B, n_line))
        ll = np.empty((B, n_line))
        tl = np.empty((B, n_trafo))
        ps = np.empty(B)
        qs = np.empty(B)
        loss = np.empty(B)
        for b in range(B):
            Vb, it, st, out = _single_nb(
                X[b], Spq0, MpqT, Zr, Zi, w, V0[b], tol, max_iter, post_args
            )
            V[b] = Vb
            iters[b] = it
            status[b] = st
            vm[b] = out[0]
            va[b] = out[1]
            pf[b] = out[2]
            ll[b] = out[3]
            tl[b] = out[4]
            ps[b] = out[5]
            qs[b] = out[6]
            loss[b] = out[7]
        return V, iters, status, (vm, va, pf, ll, tl, ps, qs, loss)


def _check_scope(net: pp.pandapowerNet) -> None:
    """Reject nets the fixed point cannot represent, before doing any work."""
    n_ext = int(net.ext_grid["in_service"].sum()) if len(net.ext_grid) else 0
    if n_ext != 1:
        raise ValueError(f"FastSolver needs exactly one in-service ext_grid, found {n_ext}")
    for el in _UNSUPPORTED:
        if el in net and len(net[el]) and net[el]["in_service"].astype(bool).any():
            raise ValueError(f"FastSolver does not support in-service '{el}' elements (PV/DC)")
    volt_dep = [c for c in net.load.columns if c.startswith("const_") and c.endswith("percent")]
    if len(net.load) and volt_dep and (net.load[volt_dep].fillna(0).to_numpy() != 0).any():
        raise ValueError("FastSolver supports constant-power loads only (const_z/const_i != 0)")
