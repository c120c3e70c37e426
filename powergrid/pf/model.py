"""NetworkModel: a pandapower net compiled once into the arrays every fast solver uses.

Why one object: the scalar solver (:class:`~powergrid.pf.fast.FastSolver`) and the batched
power flow of the vector env run the same Z-bus fixed point on the same matrices. Both read
this model's public fields, so neither depends on the other's internals (the lightsim2grid
``GridModel`` idea). Everything is pandapower's own model: Ybus, branch admittances and the
bus ordering come from one internal ``runpp``, so shunts, line charging and trafo
magnetising/taps/phase shift are exactly pandapower's.

Conventions. Internal buses are pandapower's ``ppci`` buses; ``pq`` lists the non-slack ones
in *solve order*: grouped by connected component of ``Y_pp`` (one block per feeder when the
feeders only meet at the slack), so ``Z = inv(Y_pp)`` is block diagonal and row ``i`` of the
fixed point touches only columns ``block_lo[i]:block_hi[i]``. Set-points enter as one vector
``x`` (MW / Mvar) with columns ``[load p | load q | sgen p | storage p | sgen q | storage q]``
(``input_slices``); complex bus injections in per unit (generation positive) on the PQ buses
are ``S = S0 + x @ M_T``.

Scope (ValueError otherwise): one in-service ``ext_grid``, no voltage-controlled elements
(``gen``, ``xward``, ``dcline``, ``svc``/``ssc``/``vsc``/``tcsc``), constant-power loads;
topology, switch states, ``in_service`` and ``scaling`` are frozen at construction.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import pandapower as pp
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BASE_KV, PD, QD, VA, VM
from scipy.sparse import csc_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

__all__ = ["INPUT_COLUMNS", "NetworkModel", "SparseLU"]

_SQRT3 = np.sqrt(3.0)
_UNSUPPORTED = ("gen", "xward", "dcline", "svc", "ssc", "vsc", "tcsc")
# (table, set-point, sign in consumption terms); the order of the input vector x
INPUT_COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("load", "p_mw", 1.0), ("load", "q_mvar", 1.0), ("sgen", "p_mw", -1.0),
    ("storage", "p_mw", 1.0), ("sgen", "q_mvar", -1.0), ("storage", "q_mvar", 1.0),
)


@dataclass(frozen=True, eq=False)
class SparseLU:
    """Sparse LU factors of ``Y_pp`` (solve order): ``Z @ b`` as two triangular sweeps.

    Why: ``Z = inv(Y_pp)`` is dense, but a radial feeder's ``Y_pp`` factors with no fill-in
    (minimum-degree ordering), so ``Z @ b`` costs O(n) instead of O(n^2): 74 buses on the
    IEEE-34 feeder, 147 factor entries per sweep against 5,476 dense products. ``solve``
    is the reference; the compiled kernels (``FastSolver``, the core's batch power flow)
    run the same sweeps in the same order.

    ``b_perm[k] = b[row_in[k]]``; forward ``y = L^-1 b_perm`` (unit lower, strict part in
    CSR ``L_ptr/L_idx/L_val``); backward ``z = U^-1 y`` (strict upper part in CSR
    ``U_ptr/U_idx/U_val``, ``U_dinv`` the inverse diagonal); ``x[i] = z[col_out[i]]``.
    """

    row_in: np.ndarray
    col_out: np.ndarray
    L_ptr: np.ndarray
    L_idx: np.ndarray
    L_val: np.ndarray
    U_ptr: np.ndarray
    U_idx: np.ndarray
    U_val: np.ndarray
    U_dinv: np.ndarray

    @classmethod
    def factor(cls, A: np.ndarray) -> SparseLU:
        # no row pivoting (Y_pp is diagonally dominant enough), symmetric min-degree order
        lu = splu(csc_matrix(A), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                  options={"SymmetricMode": True})
        L = csr_matrix(lu.L)
        U = csr_matrix(lu.U)
        eye = np.arange(L.shape[0])
        Ls = csr_matrix(L - csr_matrix((L.diagonal(), (eye, eye)), shape=L.shape))
        Us = csr_matrix(U - csr_matrix((U.diagonal(), (eye, eye)), shape=U.shape))
        for m in (Ls, Us):
            m.eliminate_zeros()
            m.sort_indices()
        return cls(
            row_in=np.argsort(lu.perm_r).astype(np.int64), col_out=lu.perm_c.astype(np.int64),
            L_ptr=Ls.indptr.astype(np.int64), L_idx=Ls.indices.astype(np.int64),
            L_val=Ls.data.astype(complex), U_ptr=Us.indptr.astype(np.int64),
            U_idx=Us.indices.astype(np.int64), U_val=Us.data.astype(complex),
            U_dinv=1.0 / U.diagonal().astype(complex))

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``inv(Y_pp) @ b`` for one right-hand side (n_pq,) in solve order."""
        y = b[self.row_in].astype(complex)
        n = len(y)
        for k in range(n):
            a, e = self.L_ptr[k], self.L_ptr[k + 1]
            y[k] -= self.L_val[a:e] @ y[self.L_idx[a:e]]
        for k in range(n - 1, -1, -1):
            a, e = self.U_ptr[k], self.U_ptr[k + 1]
            y[k] = (y[k] - self.U_val[a:e] @ y[self.U_idx[a:e]]) * self.U_dinv[k]
        return y[self.col_out]


@dataclass(frozen=True, eq=False)
class NetworkModel:
    """The compiled network: admittances, Z-bus factors, index maps, ratings, bases.

    Build it with :meth:`from_net`. Arrays are read-only by convention (solvers share them).
    """

    # sizes of the pandapower tables (outputs follow their row order)
    n_bus: int
    n_line: int
    n_trafo: int
    n_load: int
    n_sgen: int
    n_storage: int
    # internal buses
    n: int                  # number of internal buses
    slack: int              # internal index of the slack bus
    v_slack: complex        # its voltage, pu
    base_mva: float
    pq: np.ndarray          # (n_pq,) internal index of each PQ bus, in solve order
    bus_map: np.ndarray     # (n_bus,) internal index of each pandapower bus, -1 if dead
    Y: np.ndarray           # (n, n) bus admittance matrix, pu
    y_slack: np.ndarray     # (n,) the slack row of Y
    Z: np.ndarray           # (n_pq, n_pq) inv(Y_pp) in solve order (block diagonal)
    w: np.ndarray           # (n_pq,) -Z Y_ps V_s: the no-load voltages
    block_lo: np.ndarray    # (n_pq,) first column of row i's block in Z
    block_hi: np.ndarray    # (n_pq,) one past its last column
    # injections
    S0: np.ndarray          # (n_pq,) constant injection (other elements), pu, generation > 0
    M_T: np.ndarray         # (m, n_pq) injection per unit of each set-point column
    slack_cons0: complex    # constant demand at the slack bus, pu
    slack_M: np.ndarray     # (m,) demand at the slack bus per set-point column
    total_cons0: complex    # constant demand of the whole net, pu
    total_M: np.ndarray     # (m,) total demand per set-point column
    in_pos: np.ndarray      # (m,) PQ position (solve order) each column feeds, -1 if none
    in_coef: np.ndarray     # (m,) its injection per unit: M_T[j, in_pos[j]] (one bus each)
    # branches (lines then trafos, in-service only)
    br_from: np.ndarray     # (n_br,) internal from bus
    br_to: np.ndarray       # (n_br,) internal to bus
    br_y: np.ndarray        # (4, n_br) y_ff, y_ft, y_tf, y_tt: I_f = y_ff V_f + y_ft V_t ...
    br_kf: np.ndarray       # (n_br,) |I_f| (pu) -> percent of the rating (x |V_f| if br_power)
    br_kt: np.ndarray       # (n_br,) the same at the to end
    br_power: np.ndarray    # (n_br,) bool: loading by apparent power (trafo_loading="power")
    br_dest: np.ndarray     # (n_br,) row in [net.line rows | net.trafo rows]
    lu: SparseLU            # sparse factors of Y_pp: Z @ b in O(n) on radial feeders

    @property
    def n_inputs(self) -> int:
        """Length of the set-point vector ``x``."""
        return 2 * self.n_load + 2 * self.n_sgen + 2 * self.n_storage

    @property
    def input_slices(self) -> dict[tuple[str, str], slice]:
        """Where each (table, set-point) sits in ``x``."""
        out, k = {}, 0
        for table, col, _ in INPUT_COLUMNS:
            size = {"load": self.n_load, "sgen": self.n_sgen, "storage": self.n_storage}[table]
            out[(table, col)] = slice(k, k + size)
            k += size
        return out

    def injections(self, x: np.ndarray) -> np.ndarray:
        """PQ-bus injections (pu, generation > 0) for set-points ``x`` (m,) or (B, m)."""
        return self.S0 + x @ self.M_T

    def full_voltages(self, v_pq: np.ndarray) -> np.ndarray:
        """Internal bus voltages (n,) from the PQ-bus ones in solve order."""
        V = np.empty(self.n, dtype=complex)
        V[self.slack] = self.v_slack
        V[self.pq] = v_pq
        return V

    def voltages_from(self, vm_pu: np.ndarray, va_degree: np.ndarray) -> np.ndarray:
        """Internal bus voltages (n,) from a solver's pandapower-ordered magnitudes and
        angles (the slack at its set voltage)."""
        V = np.empty(self.n, dtype=complex)
        ok = self.bus_map >= 0
        V[self.bus_map[ok]] = (np.asarray(vm_pu)[ok]
                               * np.exp(1j * np.deg2rad(np.asarray(va_degree)[ok])))
        V[self.slack] = self.v_slack
        return V

    # ------------------------------------------------------------------ build
    @classmethod
    def from_net(cls, net_in: pp.pandapowerNet) -> NetworkModel:
        """Compile ``net_in`` (left untouched) with one pandapower solve of the no-load case."""
        check_scope(net_in)
        net = copy.deepcopy(net_in)
        # Zero the controllable set-points: the Ybus does not depend on them and the
        # remaining bus PD/QD is then exactly the constant "other" demand.
        for table in ("load", "sgen", "storage"):
            for c in ("p_mw", "q_mvar"):
                net[table][c] = 0.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # one solve only: pandapower's numba JIT (seconds) would not pay off here
                pp.runpp(net, numba=False)
        except Exception as exc:  # noqa: BLE001 - any failure means we cannot build
            raise ValueError(f"pandapower could not solve the no-load case: {exc}") from exc

        ppci, lookups, options = _pandapower_internals(net)
        ref = np.asarray(ppci["ref"], dtype=np.int64)
        pv = np.asarray(ppci["pv"], dtype=np.int64)
        if len(ref) != 1 or len(pv) != 0:
            raise ValueError(f"the fast power flow needs exactly one slack and no PV buses "
                             f"(got {len(ref)} ref, {len(pv)} pv)")
        bus = np.real(ppci["bus"])
        n = bus.shape[0]
        base = float(ppci["baseMVA"])
        Y = ppci["Ybus"].toarray()
        s = int(ref[0])
        pq = _solve_order(Y, np.setdiff1d(np.arange(n), ref))
        lo, hi = _block_ranges(Y, pq)
        v_slack = complex(bus[s, VM] * np.exp(1j * np.deg2rad(bus[s, VA])))
        Z = np.linalg.inv(Y[np.ix_(pq, pq)])
        w = -Z @ (Y[pq, s] * v_slack)

        pd_bus = lookups["bus"][net.bus.index.to_numpy()]
        bus_map = np.where(pd_bus < n, pd_bus, -1).astype(np.int64)

        cons0 = (bus[:, PD] + 1j * bus[:, QD]) / base
        M = np.concatenate([_incidence(net, lookups["bus"], table, sign, n) * (1j if col == "q_mvar" else 1.0)
                            for table, col, sign in INPUT_COLUMNS], axis=1) / base
        br = _branches(net, ppci, lookups["branch"], options, bus, base)
        M_T = np.ascontiguousarray(-M[pq].T)
        in_pos, in_coef = _one_bus_per_column(M_T)
        return cls(
            n_bus=len(net.bus), n_line=len(net.line), n_trafo=len(net.trafo),
            n_load=len(net.load), n_sgen=len(net.sgen), n_storage=len(net.storage),
            n=n, slack=s, v_slack=v_slack, base_mva=base, pq=pq, bus_map=bus_map, Y=Y,
            y_slack=Y[s].copy(), Z=np.ascontiguousarray(Z), w=w, block_lo=lo, block_hi=hi,
            S0=-cons0[pq], M_T=M_T, slack_cons0=complex(cons0[s]),
            slack_M=M[s].copy(), total_cons0=complex(cons0.sum()), total_M=M.sum(axis=0),
            in_pos=in_pos, in_coef=in_coef, lu=SparseLU.factor(Y[np.ix_(pq, pq)]), **br,
        )


def _pandapower_internals(net: pp.pandapowerNet) -> tuple[dict, dict, dict]:
    """pandapower's compiled model after ``runpp``: the internal ppc (Ybus, Yf/Yt, the bus
    and branch tables), the element -> ppc row lookups and the runpp options.

    pandapower has no public accessor for them; this is the only place here that reads its
    private fields (allowlisted in tests/test_private_access.py).
    """
    return net._ppc["internal"], net._pd2ppc_lookups, net._options


def check_scope(net: pp.pandapowerNet) -> None:
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


def _one_bus_per_column(M_T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each set-point feeds one bus: (position, coefficient) per column, -1/0 if none."""
    nz = M_T != 0
    if (nz.sum(axis=1) > 1).any():  # pragma: no cover - every element sits on one bus
        raise ValueError("a set-point column feeds more than one bus")
    pos = np.where(nz.any(axis=1), nz.argmax(axis=1), -1).astype(np.int64)
    coef = np.where(pos >= 0, M_T[np.arange(len(M_T)), np.maximum(pos, 0)], 0.0)
    return pos, coef.astype(complex)


def _solve_order(Y: np.ndarray, pq: np.ndarray) -> np.ndarray:
    """PQ buses grouped by connected component of Y_pp (stable within a component)."""
    _, label = connected_components(Y[np.ix_(pq, pq)] != 0, directed=False)
    return pq[np.argsort(label, kind="stable")].astype(np.int64)


def _block_ranges(Y: np.ndarray, pq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column range of each row's diagonal block of Z (pq already in solve order)."""
    _, label = connected_components(Y[np.ix_(pq, pq)] != 0, directed=False)
    lo = np.empty(len(pq), np.int64)
    hi = np.empty(len(pq), np.int64)
    for c in np.unique(label):
        rows = np.flatnonzero(label == c)  # contiguous by construction of the solve order
        lo[rows], hi[rows] = rows[0], rows[-1] + 1
    return lo, hi


def _incidence(net: pp.pandapowerNet, bus_lookup: np.ndarray, table: str, sign: float,
               n: int) -> np.ndarray:
    """Dense (n_bus_internal, n_element) map of set-points to bus demand.

    Folds ``scaling``/``in_service`` in (frozen at construction) the same way pandapower
    builds bus PD/QD; elements on dead buses drop out as in pandapower.
    """
    df = net[table]
    C = np.zeros((n, len(df)))
    if len(df) == 0:
        return C
    ppc_bus = bus_lookup[df["bus"].to_numpy()]
    bus_live = net.bus.loc[df["bus"], "in_service"].to_numpy(bool)
    coef = sign * df["scaling"].to_numpy(float) * df["in_service"].to_numpy(bool) * bus_live
    ok = (ppc_bus < n) & (coef != 0)
    C[ppc_bus[ok], np.nonzero(ok)[0]] = coef[ok]
    return C


def _branches(net: pp.pandapowerNet, ppci: dict, branch_lookup: dict, options: dict,
              bus: np.ndarray, base: float) -> dict:
    """Lines and trafos as one branch set: end buses, 2x2 admittances, rating factors.

    pandapower orders ppc branches (line, trafo, ...) and the internal model keeps only
    in-service rows (``branch_is``); out-of-service branches report 0 like pandapower.
    """
    Yf = ppci["Yf"].toarray()
    Yt = ppci["Yt"].toarray()
    branch_is = np.asarray(ppci["branch_is"], dtype=bool)
    ppc2ppci = np.full(len(branch_is), -1, dtype=np.int64)
    ppc2ppci[branch_is] = np.arange(int(branch_is.sum()))
    br = np.real(ppci["branch"])
    trafo_power = options.get("trafo_loading", "current") == "power"
    rows, dest, kf_all, kt_all, pw = [], [], [], [], []
    offset = 0
    for el in ("line", "trafo"):
        df = net[el]
        if len(df) and el in branch_lookup:
            f, t = branch_lookup[el]
            r = ppc2ppci[f:t]
            ok = r >= 0
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
                kf_all.append(kf * inv)
                kt_all.append(kt * inv)
                pw.append(np.zeros(len(r), dtype=bool))
            else:
                den = (df["sn_mva"] * df["parallel"] * df["df"]).to_numpy(float)[ok]
                if trafo_power:  # |S| = |V||I| baseMVA
                    kf_all.append(np.full(len(r), base * 100.0) / den)
                    kt_all.append(np.full(len(r), base * 100.0) / den)
                else:
                    kf_all.append(kf * df["vn_hv_kv"].to_numpy(float)[ok] * _SQRT3 * 100.0 / den)
                    kt_all.append(kt * df["vn_lv_kv"].to_numpy(float)[ok] * _SQRT3 * 100.0 / den)
                pw.append(np.full(len(r), trafo_power))
            rows.append(r)
            dest.append(offset + np.nonzero(ok)[0])
        offset += len(df)

    def cat(parts: list, dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    r = cat(rows, np.int64)
    fb = br[r, F_BUS].astype(np.int64)
    tb = br[r, T_BUS].astype(np.int64)
    k = np.arange(len(r))
    # A branch row of Yf/Yt only touches its two end buses: keep the 2x2 block.
    y = np.stack([Yf[r][k, fb], Yf[r][k, tb], Yt[r][k, fb], Yt[r][k, tb]])
    return {"br_from": fb, "br_to": tb, "br_y": y, "br_kf": cat(kf_all, float),
            "br_kt": cat(kt_all, float), "br_power": cat(pw, bool),
            "br_dest": cat(dest, np.int64)}
