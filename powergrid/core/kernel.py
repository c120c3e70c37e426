"""The compiled step: :meth:`Simulation.step` in a few numba calls.

Why: at B = 1 every numpy stage of ``powergrid.core.step`` is call overhead on arrays of
two elements, so the scalar env ran slower through the core than through its own
pipeline. The step is split into compiled stages around the stages that stay Python:

    K1 dispatch (+ PF set-points) -> [Python: tariff signal, per-row clearing through
    each row's Coordination, ahead deliver + trade] -> K2 (compiled clearing,)
    settlement with the grid, power flow -> [Python: coordination settle] -> K3 safety
    -> [Python: network costs] -> K4 costs, rewards, state update

and the observations are one more call (the ahead market's and the coordination's
features are filled in by ``Simulation.observe`` in the columns left for them). When no
stage is Python (:attr:`FusedStep.fused`), the whole step is one call (:func:`_step`);
so it is when rows clear through their Coordinations but each is the plain built-in
case (:meth:`FusedStep.step_rows`: the scalar env's default set-up), the kernel then
logging each row's trades so that the ``Order``/``Trade`` results are rebuilt exactly.
The stages are small njit functions; they call the same compiled functions the general
path uses (the device twins' :func:`step_twin`, the clearing rules' :func:`clear_into`,
the batch power flow's :func:`solve_packed`) and repeat only the few array formulas of
``step.py`` that compilation requires (money, safety, costs), with the same operations
in the same order.

:meth:`FusedStep.build` returns None unless the devices are built-in (compiled twins)
and the power flow is the fast one with numba, and the observation features and cost
terms are the ones the kernel knows; then ``Simulation`` keeps the numpy stages (the
general path). Rows whose power flow does not converge leave compiled code once, for
``FastSolver``'s Newton fallback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from heron.market.batched import LOG_WIDTH, clear_into, clear_into_logged
from powergrid.core.ahead import AHEAD_LABELS
from powergrid.core.layout import COMMON_LABELS, COST_NAMES, COST_SIGNS
from powergrid.core.market import EPS_KWH, MarketResult, logged_results
from powergrid.core.packing import f1, f2, i1, i2, pack
from powergrid.core.powerflow import CHUNK, BatchPF, BatchPowerFlow, solve_packed
from powergrid.core.rows import RowLayout
from powergrid.devices.batched import (
    KIND_ESS,
    PAR_LEN,
    STATE_ROWS,
    BatchedDevice,
    observe_twin,
    step_twin,
)
from powergrid.envs.safety import LOADING_CEIL_PCT, V_CEIL_PU, V_FLOOR_PU
from powergrid.network_costs import NETWORK_COST_TERMS
from powergrid.pf.jit import cache_depends_on

if TYPE_CHECKING:
    from powergrid.core.step import Simulation, StepOutput

# every cost term the kernel knows, as rows of its per-agent output (layout.COST_TERMS
# order); a step books the ones its configuration has (FusedStep.costs)
COSTS = ("generation", "degradation", "other_devices", "grid_import", "grid_export_revenue",
         "p2p_payment", "p2p_revenue", "fees", "safety_penalty", "tracking_penalty",
         "storage_terminal", "imbalance", "network_losses", "network_violation")
# the terms of every configuration; the ahead market adds imbalance, network costs theirs
BASE_COSTS = COSTS[:11]
# the rest of the (R, B, N) per-agent output, after the costs
ROWS = (*COSTS, "total", "rewards", "grid_import_kwh", "grid_export_kwh", "bought_kwh",
        "sold_kwh", "net_kw", "load_kw", "v_min_pu", "v_max_pu", "voltage_violation_pu",
        "line_loading_max_pct", "pcc_loading_pct")
# (B,) shared outputs, and the (B, N) bool ones
SHARED = ("clearing_price", "upstream_import_kw", "network_losses_kw", "feeder_v_min_pu",
          "feeder_v_max_pu", "pcc_loading_max_pct")
FLAGS = ("device_limited", "soc_violation")
R = {name: k for k, name in enumerate(ROWS)}
# common observation features by code (layout.COMMON_OBS gives their order)
FEATURES = ("load_now", "load_next", "pv_now", "pv_next", "hour_sin", "hour_cos",
            "retail_price", "feed_in_price", "last_clearing_price", "last_p2p_kwh",
            "last_grid_kwh", "v_min_pu", "v_max_pu")
N_FEATURES = len(FEATURES)
HOUR_SIN = np.array([math.sin(2 * math.pi * h / 24) for h in range(24)])
HOUR_COS = np.array([math.cos(2 * math.pi * h / 24) for h in range(24)])

# rows of the (len(ROWS), B, N) per-agent output, as compile-time constants
(R_GEN, R_DEG, R_OTHER, R_IMPORT, R_EXPORT, R_PAID, R_RECEIVED, R_FEES, R_PENALTY, R_TRACKING,
 R_TERMINAL, R_IMBALANCE, R_NET_LOSSES, R_NET_VIOLATION, R_TOTAL, R_REWARDS, R_IMPORT_KWH,
 R_EXPORT_KWH, R_BOUGHT, R_SOLD, R_NET, R_LOAD, R_VMIN, R_VMAX, R_VVIOL, R_LMAX,
 R_PCC) = range(len(ROWS))
S_PRICE, S_UPSTREAM, S_LOSSES, S_FVMIN, S_FVMAX, S_PCCMAX = range(len(SHARED))
# packed static items (powergrid.core.packing), in this order
(F_PAR, F_AGENT, F_DEV_PAR, F_LOAD_SHARE, F_LOAD_Q, F_FEEDER_MW, F_SIGN, F_SIN, F_COS,
 I_PAR, I_DEV, I_PRICE_COL, I_LOAD_OWNER, I_FEEDER_ROWS, I_FEEDER_BUSES, I_BUS_PTR,
 I_BUS_IDX, I_LINE_PTR, I_LINE_IDX, I_OBS_CODE, I_OBS_OFF, I_PCC, I_COSTS) = range(23)
# F_PAR entries
P_DT, P_FEE, P_K, P_VLO, P_VHI, P_VPEN, P_LPEN, P_TERMINAL, P_FAIL = range(9)
# I_PAR entries (Q_CLEAR: the compiled clearing runs in the grid stage; Q_GAP: observation
# columns after the common features that Simulation.observe fills, the ahead market's)
(Q_N, Q_STEPS, Q_CODE, Q_CLEAR, Q_SHARE, Q_NLOAD, Q_NSGEN, Q_NSTORAGE, Q_NLINE,
 Q_GAP) = range(10)
# I_DEV columns: twin kind, agent, action column (packed), element is storage, pf row, bucket,
# action width, state row of q_kvar (-1: no reactive power)
D_KIND, D_AGENT, D_COL, D_STORAGE, D_ROW, D_BUCKET, D_WIDTH, D_QROW = range(8)


class FusedStep:
    """The compiled stages of one :class:`Simulation` (see the module docstring).

    :meth:`step` runs a whole step in one call when :attr:`fused`, :meth:`step_rows`
    when the rows' Coordinations clear as a compiled rule (``Simulation._plain_rows``);
    otherwise ``Simulation.step`` calls the stages in order, with its Python stages in
    between:
    :meth:`dispatch`, :meth:`book` (a market cleared in Python), :meth:`grid`,
    :meth:`book_costs`, :meth:`check` and :meth:`close` (or :meth:`finish` for both), then
    :meth:`output`.
    """

    def __init__(self, sim: Simulation, devices: list[tuple[int, int, BatchedDevice]],
                 code: int, k: float, clears: bool, fused: bool) -> None:
        from powergrid.core.step import StepOutput  # step.py imports this module

        self.sim, self.B, self.N = sim, sim.B, sim.params.n_agents
        self._output = StepOutput
        self.pf: BatchPowerFlow = sim.pf
        self._devices = devices
        #: no Python stage: :meth:`step` is the whole step in one compiled call
        self.fused = fused
        #: the market clears in compiled code (the grid stage), not through :meth:`book`
        self.clears = clears
        #: the cost terms this configuration books, in COST_TERMS order
        self.costs = tuple(c for c in COSTS if c in BASE_COSTS
                           or (c == "imbalance" and sim.ahead is not None)
                           or (c in NETWORK_COST_TERMS and sim.network_costs is not None))
        self._cost_keys = tuple(f"costs/{c}" for c in self.costs)  # their flat info names
        self._cost_rows = np.array([R[c] for c in self.costs], np.int64)
        # the layouts of output(): rows of the (R, B, N) outputs and flags, the (S, B) shared
        self._costs_layout = RowLayout.build(self.costs, [(0, R[c]) for c in self.costs])
        per = (*ROWS[R_IMPORT_KWH:], *FLAGS, *self._cost_keys, "costs/total")
        self._per_layout = RowLayout.build(per, [
            *((0, r) for r in range(R_IMPORT_KWH, len(ROWS))), *((1, r) for r in range(len(FLAGS))),
            *((0, R[c]) for c in (*self.costs, "total"))])
        self._shared_layout = RowLayout.build((*SHARED, "pf_converged"),
                                      [*((0, r) for r in range(len(SHARED))), (1, None)])
        # every device's state in one array; the twins' own state becomes views of it
        n = max(len(devices), 1)
        self.dev_state = np.zeros((n, STATE_ROWS, self.B))
        self.dev_clip = np.zeros((n, self.B), np.bool_)
        for j, (_, _, d) in enumerate(devices):
            d.bind(self.dev_state[j], self.dev_clip[j])
        self._static: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        #: (code, k, fee, clears) of the construction's clearing; :meth:`step_rows` packs
        #: its own, so static inputs are kept per (action widths, clearing)
        self._clearing = (int(code), float(k), float(sim.fee), bool(clears))
        self._key: tuple = ()
        self._statics: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # observation columns (Simulation.obs_offsets, the one layout): common, the gap
        # Simulation.observe fills (ahead market), one per device, then the coordination's
        # extra features (also filled there)
        self.gap = 0 if sim.ahead is None else len(AHEAD_LABELS)
        self._obs_off = np.array(sim.obs_offsets[:self.N + 1], np.int64)
        p, md, B = sim.params, sim.pf.model, self.B
        # scratch the caller never sees: PF set-points and results
        # load p | load q | sgen p | storage p (| sgen q | storage q with reactive power)
        self._groups = [p.n_load, p.n_load, p.n_sgen, p.n_storage]
        if p.reactive:
            self._groups += [p.n_sgen, p.n_storage]
        self._X = np.zeros((B, sum(self._groups)))
        self._vm = np.zeros((B, md.n_bus))
        self._loading = np.zeros((B, md.n_line + md.n_trafo))  # lines, then trafos
        self._slack = np.zeros((2, B))
        # the compiled clearing's books (side, quantity, limit per slot) and, for
        # step_rows, its trade log: row b's trades end at _ends[b]
        self._book = np.zeros((3, B, self.N))
        self._no_log = np.empty((0, LOG_WIDTH))
        self._log = np.empty((2 * self.N * B, LOG_WIDTH))
        self._ends = np.zeros(B, np.int64)
        self._all_live = np.ones(B, np.bool_)  # grid(): the batched books clear every row
        # the outputs of the step under way (new arrays each step: callers keep them)
        self._out = self._flags = self._shared = self._ok = np.zeros(0)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """After a copy or unpickling the twins' states are views of this kernel's arrays
        again: a copy turns each view into an array of its own, which the kernel would no
        longer step (the device objects and infos of a copied env went stale)."""
        self.__dict__.update(state)
        for j, (_, _, d) in enumerate(self._devices):
            d.bind(self.dev_state[j], self.dev_clip[j])

    @classmethod
    def build(cls, sim: Simulation) -> FusedStep | None:
        """The compiled stages of ``sim``, or None when the devices, the power flow, the
        observation features or the cost terms are not all compilable."""
        if (not isinstance(sim.pf, BatchPowerFlow) or not sim.pf.use_kernel
                or set(FEATURES) != set(COMMON_LABELS) or COST_NAMES != COSTS):
            return None
        devices = []
        for i, devs in enumerate(sim.devices):
            col = 0
            for d in devs:
                # a twin observes one feature (observe_twin)
                if (not d.compiled or not hasattr(d, "compiled_form")
                        or len(d.obs_labels) != 1):
                    return None
                devices.append((i, col, d))
                col += d.action_dim
        spec = sim.rule.kernel() if sim.batch_market and sim.rule is not None else None
        code, k = (0, 0.0) if spec is None else spec
        # the real-time batched books clear in compiled code; the ahead market's books
        # and every per-row market clear in Python
        clears = spec is not None and sim.ahead is None
        fused = ((clears or not sim.has_market) and sim.coords is None and not sim.has_dso
                 and not sim.extra_obs and sim.ahead is None and sim.network_costs is None
                 and not sim.pf.voltages)
        return cls(sim, devices, int(code), float(k), clears, fused)

    def _pack(self, widths: tuple[int, ...], clearing: tuple[int, float, float, bool]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The static inputs, once the action widths are known (first step), for one
        clearing ``(code, k, fee, clears)``."""
        sim, p = self.sim, self.sim.params
        code, k, fee, clears = clearing
        off = np.cumsum([0, *widths])
        meta = np.zeros((len(self.dev_state), 8), np.int64)
        par = np.zeros((len(self.dev_state), PAR_LEN))
        for j, (i, col, d) in enumerate(self._devices):
            where = sim.devices[i].index(d)
            element, row = sim.device_rows[i][where]
            ct = d.compiled_form()
            q_row = (d.fields.index("q_kvar") + 2 if getattr(d, "reactive", False) else -1)
            meta[j] = (ct.kind, i, off[i] + col, element == "storage", row,
                       sim.cost_buckets[i][where], d.action_dim, q_row)
            par[j] = ct.par
        fr, (lo, hi) = p.failure, p.voltage_band
        return pack([
            np.array([p.dt, fee, k, lo, hi, p.voltage_penalty_per_pu,
                      p.line_overload_penalty_per_pct, p.storage_terminal_price, fr.base]),
            np.stack([p.peak_kw, fr.bound, fr.rated_kva, fr.q_per_kw,
                      fr.voltage_violation_pu]).astype(float),
            par, p.load_share_mw, p.load_q_ratio, p.feeder_load_mw.astype(float),
            np.array([COST_SIGNS[c] for c in self.costs]), HOUR_SIN, HOUR_COS,
            np.array([self.N, p.steps, code, clears, p.share_reward, p.n_load,
                      p.n_sgen, p.n_storage, sim.pf.model.n_line, self.gap], np.int64),
            meta[:max(len(self._devices), 1)] if self._devices else np.zeros((0, 6), np.int64),
            off[1:] - 1, p.load_owner, p.feeder_load_rows, p.feeder_buses,
            np.cumsum([0, *(len(b) for b in p.bus_rows)]), np.concatenate(p.bus_rows),
            np.cumsum([0, *(len(b) for b in p.line_rows)]), np.concatenate(p.line_rows),
            np.array([FEATURES.index(f) for f in COMMON_LABELS], np.int64), self._obs_off,
            p.pcc_rows, self._cost_rows,
        ])

    # ------------------------------------------------------------------ step
    def _begin(self, acts: Sequence[np.ndarray],
               clearing: tuple[int, float, float, bool] | None = None) -> np.ndarray:
        """New output arrays for a step; the agents' actions packed in one array."""
        B, N = self.B, self.N
        acts = acts[:N]
        key = (tuple([a.shape[1] for a in acts]), clearing or self._clearing)
        if key != self._key:
            static = self._statics.get(key)
            if static is None:
                static = self._statics[key] = self._pack(*key)
            self._static, self._key = static, key
        self._out = np.zeros((len(ROWS), B, N))
        self._flags = np.zeros((len(FLAGS), B, N), np.bool_)
        self._shared = np.empty((len(SHARED), B))
        self._ok = np.zeros(B, np.bool_)
        return np.concatenate(acts, axis=1) if N > 1 else acts[0]

    def step(self, acts: Sequence[np.ndarray], live: np.ndarray) -> StepOutput:
        """The whole step in one compiled call (only when :attr:`fused`)."""
        self._run(self._begin(acts), live, self._no_log)
        return self.output()

    def _run(self, packed: np.ndarray, live: np.ndarray, log: np.ndarray) -> None:
        """The fused compiled call (its trades into ``log`` if it has rows)."""
        s = self.sim.state
        # sgen/storage columns without a device stay 0; every other column is rewritten
        if not _step(packed, live, s.t, s.hours, s.pv, s.retail, s.feed_in, s.load_kw,
                     s.feeder_load_pu, s.last_price, s.last_p2p, s.last_grid, s.v_min,
                     s.v_max, s.last_losses_kw, s.last_pcc, s.stored_start, s.needs_reset,
                     self.dev_state, self.dev_clip, self._out, self._flags, self._shared,
                     self._ok, self._vm, self._loading, self._slack, self._book, log,
                     self._ends, *self._static, self._X, self.pf.warm_start, *self.pf.packed):
            # some rows did not converge: FastSolver (with its Newton fallback) re-solves
            # them, then the rest of the step runs on the repaired results
            self._repair()
            self.finish(live)

    def step_rows(self, acts: Sequence[np.ndarray], live: np.ndarray, agents: Sequence[str],
                  clearing: tuple[int, float, float]) -> StepOutput:
        """The whole step in one compiled call for rows that clear through their own
        Coordination when that is the plain built-in case (``core.market.compiled_clearing``
        with ``clearing = (code, k, fee)`` for every row): the kernel clears and logs each
        row's trades, and each live row's ``Order``/``Trade`` results are rebuilt from the
        books and the log, as the row market's."""
        code, k, fee = clearing
        self._run(self._begin(acts, (code, k, fee, True)), live, self._log)
        out = self._out
        results, orders = logged_results(agents, self._book, self._log, self._ends,
                                         live, code, self._shared[S_PRICE])
        market = MarketResult(out[R_BOUGHT], out[R_SOLD], out[R_PAID], out[R_RECEIVED],
                              out[R_FEES], self._shared[S_PRICE], results, orders)
        return self.output(market=market)

    def dispatch(self, acts: Sequence[np.ndarray]) -> np.ndarray:
        """K1: the devices step; (B, N) net kW (a view of this step's outputs)."""
        s, self._packed = self.sim.state, self._begin(acts)
        _k_dispatch(self._packed, s.t, s.pv, s.load_kw, self.dev_state, self.dev_clip,
                    self._out, self._flags, self._shared, self._X, *self._static)
        return self._out[R_NET]

    def book(self, market: MarketResult) -> None:
        """A market cleared outside compiled code: its quantities, money and price."""
        out = self._out
        out[R_BOUGHT], out[R_SOLD], out[R_PAID] = market.bought, market.sold, market.paid
        out[R_RECEIVED], out[R_FEES] = market.received, market.fees
        self._shared[S_PRICE] = market.price

    def traded(self) -> tuple[np.ndarray, np.ndarray]:
        """(B, N) kWh bought and sold this step (after the market)."""
        return self._out[R_BOUGHT], self._out[R_SOLD]

    def grid(self, retail: np.ndarray, feed_in: np.ndarray) -> BatchPF:
        """K2: (the compiled clearing,) the residual with the grid at this step's (B,)
        tariff, the power flow; rows it did not solve are repaired by ``FastSolver``."""
        s = self.sim.state
        if not _k_grid(self._packed, retail, feed_in, s.t, s.feeder_load_pu, self._out,
                       self._shared, self._X, self._ok, self._vm, self._loading, self._slack,
                       self._all_live, self._book, self._no_log, self._ends, *self._static,
                       self.pf.warm_start, *self.pf.packed):
            return self._repair()
        n_line = self.pf.model.n_line
        return BatchPF(self._ok, self._vm, self._loading[:, :n_line], self._slack[0],
                       self._slack[1], self._loading[:, n_line:],
                       self.pf.kernel_voltages(self._ok))

    def _repair(self) -> BatchPF:
        """FastSolver re-solves the rows the batch kernel did not (Newton fallback)."""
        n_line = self.pf.model.n_line
        pf = BatchPF(self._ok, self._vm, self._loading[:, :n_line], self._slack[0],
                     self._slack[1], self._loading[:, n_line:],
                     self.pf.kernel_voltages(self._ok))
        self.pf.patch(pf, np.flatnonzero(~self._ok),
                      *np.split(self._X, np.cumsum(self._groups)[:-1], axis=1))
        return pf

    def book_costs(self, terms: dict[str, np.ndarray]) -> None:
        """(B, N) cost terms computed in Python (tracking, imbalance, network costs, the
        tariff on the ahead market's residual), before :meth:`close`."""
        for name, value in terms.items():
            self._out[R[name]] = value

    def check(self) -> None:
        """K3: safety (penalties, voltages, the failure rule) and state-of-charge flags."""
        s = self.sim.state
        _k_check(self._out, self._flags, self._ok, self._vm, self._loading, self._slack,
                 self._shared, s.last_losses_kw, s.last_pcc, s.v_min, s.v_max, s.t,
                 s.feeder_load_pu, self.dev_state, *self._static)

    def close(self, live: np.ndarray) -> None:
        """K4: storage terminal value, the signed total, rewards, the state update."""
        s = self.sim.state
        _k_close(self._out, self._shared, live, s.t, s.needs_reset, s.last_price, s.last_p2p,
                 s.last_grid, self.dev_state, s.stored_start, *self._static)

    def finish(self, live: np.ndarray) -> None:
        """:meth:`check` then :meth:`close` in one call."""
        s = self.sim.state
        _finish(self._out, self._flags, self._ok, self._vm, self._loading, self._slack,
                self._shared, s.last_losses_kw, s.last_pcc, s.v_min, s.v_max, s.t,
                s.feeder_load_pu, self.dev_state, live, s.needs_reset, s.last_price,
                s.last_p2p, s.last_grid, s.stored_start, *self._static)

    def output(self, per_agent: dict[str, np.ndarray] | None = None,
               shared: dict[str, np.ndarray] | None = None,
               dso_reward: np.ndarray | None = None,
               dso_info: dict[str, np.ndarray] | None = None,
               market: MarketResult | None = None) -> StepOutput:
        """This step's :class:`StepOutput` (row views), with the Python stages' infos."""
        out = self._out  # tables of its rows: views made on access, one row read at once
        per = self._per_layout.bind((out, self._flags))
        shared_out = self._shared_layout.bind((self._shared, self._ok))
        return self._output(self._costs_layout.bind((out,)), out[R_TOTAL], out[R_REWARDS],
                            per.extended(per_agent) if per_agent else per,
                            shared_out.extended(shared) if shared else shared_out,
                            dso_reward, dso_info, market)

    def observe_into(self, out: np.ndarray) -> None:
        """Every agent's raw features side by side into ``out`` ((B, >= total obs_dim)
        float64, C-contiguous; columns beyond the agents' untouched). The ahead market's
        columns (after the common ones) and the coordination's (last of each agent) are
        left for the caller to fill."""
        s = self.sim.state
        if self._static is None:  # before the first step: action widths are not needed
            self._static = self._pack(tuple(1 for _ in range(self.N)), self._clearing)
        _observe(s.t, s.hours, s.pv, s.retail, s.feed_in, s.load_forecast, s.last_price,
                 s.last_p2p, s.last_grid, s.v_min, s.v_max, self.dev_state, out,
                 *self._static)

# ---------------------------------------------------------------------- compiled stages

@njit(cache=True, inline="always")
def _max0(a):  # pragma: no cover - compiled
    """np.maximum(a, 0.0): a when a >= 0 or NaN, else 0.0."""
    return a if (a >= 0.0 or a != a) else 0.0


@njit(cache=True)
def _dispatch(acts, t, pv, load_kw, dev_state, dev_clip, dev_par, dev, dt, out, limited, X,
              n_load, n_sgen, n_storage):  # pragma: no cover - compiled
    """Devices step (the twins' kernels): net kW, cost buckets, limits, PF set-points."""
    B, N = out.shape[1], out.shape[2]
    pv_t = np.empty(B)
    acc = np.zeros((B, N))  # sum of device powers, in device order (as step.py)
    for b in range(B):
        pv_t[b] = pv[b, t[b]]
        for i in range(N):
            out[R_LOAD, b, i] = load_kw[b, t[b], i]
    for j in range(dev.shape[0]):
        a, col, bucket = dev[j, D_AGENT], dev[j, D_COL], dev[j, D_BUCKET]
        step_twin(dev[j, D_KIND], dev_state[j], dev_clip[j], dev_par[j],
                  acts[:, col:col + dev[j, D_WIDTH]], dt, pv_t)
        q_row, reactive = dev[j, D_QROW], X.shape[1] > 2 * n_load + n_sgen + n_storage
        for b in range(B):
            p_kw = dev_state[j, 0, b]
            acc[b, a] = acc[b, a] + p_kw
            out[bucket, b, a] += dev_state[j, 1, b]
            limited[b, a] |= dev_clip[j, b]
            if dev[j, D_STORAGE]:  # pandapower storage: + = charging (and consuming Q)
                X[b, 2 * n_load + n_sgen + dev[j, D_ROW]] = -p_kw * 1e-3
                if reactive and q_row >= 0:
                    X[b, 2 * n_load + 2 * n_sgen + n_storage + dev[j, D_ROW]] = (
                        -dev_state[j, q_row, b] * 1e-3)
            else:
                X[b, 2 * n_load + dev[j, D_ROW]] = p_kw * 1e-3
                if reactive and q_row >= 0:
                    X[b, 2 * n_load + n_sgen + n_storage + dev[j, D_ROW]] = (
                        dev_state[j, q_row, b] * 1e-3)
    for b in range(B):
        for i in range(N):
            out[R_NET, b, i] = acc[b, i] - out[R_LOAD, b, i]


@njit(cache=True)
def _market(acts, price_col, retail, feed_in, dt, fee, code, k, out, price, live, book, log,
            ends):  # pragma: no cover - compiled
    """Orders from net positions (as powergrid.core.market.clear_batch), then clearing;
    ``retail``/``feed_in`` (B,) are this step's tariff. ``book`` (3, B, N) receives every
    slot's order (side, quantity, limit). With a ``log`` (rows > 0: the row market's
    clearing) the rows clear one at a time and log their trades, row b's ending at
    ``ends[b]``, and rows not ``live`` post no orders (as the row market)."""
    logged = log.shape[0] > 0
    net = out[R_NET]
    B, N = net.shape
    side = np.zeros((B, N), np.int64)
    qty, limit = book[1], book[2]
    half = 0.5 * fee
    for b in range(B):
        low, high = feed_in[b] + half, retail[b] - half
        for i in range(N):
            q = abs(net[b, i]) * dt
            qty[b, i] = q
            limit[b, i] = low + (acts[b, price_col[i]] + 1.0) * 0.5 * (high - low)
            if q > EPS_KWH and low <= high and (live[b] or not logged):
                side[b, i] = -1 if net[b, i] > 0 else 1
            book[0, b, i] = side[b, i]
        price[b] = np.nan
    pf = np.zeros((1, N, N))
    if not logged:
        clear_into(code, k, side, qty, limit, fee, pf, out[R_BOUGHT], out[R_SOLD],
                   out[R_PAID], out[R_RECEIVED], out[R_FEES], price, np.zeros(B),
                   np.zeros(B))
        return
    nlog = np.zeros(1, np.int64)
    for b in range(B):
        r = slice(b, b + 1)
        clear_into_logged(code, k, side[r], qty[r], limit[r], fee, pf, out[R_BOUGHT, r],
                          out[R_SOLD, r], out[R_PAID, r], out[R_RECEIVED, r], out[R_FEES, r],
                          price[r], np.zeros(1), np.zeros(1), log, nlog)
        ends[b] = nlog[0]


@njit(cache=True)
def _settle(out, retail, feed_in, dt):  # pragma: no cover - compiled
    """The residual with the grid: import at retail, export at feed-in ((B,) tariff)."""
    B, N = out.shape[1], out.shape[2]
    for b in range(B):
        for i in range(N):
            exchange = out[R_NET, b, i] * dt - out[R_SOLD, b, i] + out[R_BOUGHT, b, i]
            exp, imp = _max0(exchange), _max0(-exchange)
            out[R_EXPORT_KWH, b, i], out[R_IMPORT_KWH, b, i] = exp, imp
            out[R_IMPORT, b, i] = imp * retail[b]
            out[R_EXPORT, b, i] = exp * feed_in[b]


@njit(cache=True)
def _loads(out, t, feeder_pu, X, owner, share, q_ratio, feeder_rows,
           feeder_mw):  # pragma: no cover - compiled
    """Load set-points of the power flow (MW, Mvar) from the microgrids' loads."""
    n_load = owner.shape[0]
    for b in range(X.shape[0]):
        for j in range(n_load):
            X[b, j] = out[R_LOAD, b, owner[j]] * share[j]
        for q in range(feeder_rows.shape[0]):
            X[b, feeder_rows[q]] = feeder_mw[q] * feeder_pu[b, t[b]]
        for j in range(n_load):
            X[b, n_load + j] = X[b, j] * q_ratio[j]


@njit(cache=True)
def _safety(out, ok, vm, loading, slack, shared, last_losses, last_pcc, v_min, v_max, t,
            feeder_pu, fpar, agent_f, feeder_mw, bus_ptr, bus_idx, line_ptr, line_idx,
            feeder_buses, pcc_col):  # pragma: no cover - compiled
    """Penalties, voltage extremes, safety metrics and the failure rule
    (powergrid.envs.safety), as the general path's safety stage."""
    band_lo, band_hi, vpen, lpen = fpar[P_VLO], fpar[P_VHI], fpar[P_VPEN], fpar[P_LPEN]
    B, N = out.shape[1], out.shape[2]
    for b in range(B):
        l_all, v_lo, v_hi = -np.inf, np.inf, -np.inf
        for i in range(N):
            viol, lo, hi = 0.0, np.inf, -np.inf
            for q in range(bus_ptr[i], bus_ptr[i + 1]):
                v = vm[b, bus_idx[q]]
                viol += _max0(v - band_hi) + _max0(band_lo - v)
                lo, hi = min(lo, v), max(hi, v)
            over, lmax = 0.0, -np.inf
            for q in range(line_ptr[i], line_ptr[i + 1]):
                ld = loading[b, line_idx[q]]
                over += _max0(ld - 100.0)
                lmax = max(lmax, ld)
            out[R_PENALTY, b, i] = vpen * viol + lpen * over
            out[R_VVIOL, b, i], out[R_LMAX, b, i] = viol, lmax
            out[R_PCC, b, i] = loading[b, pcc_col[i]]
            v_min[b, i], v_max[b, i] = lo, hi
            v_lo, v_hi, l_all = min(v_lo, lo), max(v_hi, hi), max(l_all, lmax)
        f_lo, f_hi = 1.0, 1.0
        if feeder_buses.shape[0]:
            f_lo, f_hi = np.inf, -np.inf
            for q in range(feeder_buses.shape[0]):
                v = vm[b, feeder_buses[q]]
                f_lo, f_hi = min(f_lo, v), max(f_hi, v)
            v_lo, v_hi = min(v_lo, f_lo), max(v_hi, f_hi)
        ok[b] = ok[b] and v_lo >= V_FLOOR_PU and v_hi <= V_CEIL_PU and l_all <= LOADING_CEIL_PCT
        if ok[b]:
            losses = slack[1, b] * 1e3
            shared[S_UPSTREAM, b] = slack[0, b] * 1e3
            last_losses[b] = losses
            for i in range(N):
                last_pcc[b, i] = out[R_PCC, b, i]
        else:  # the collapse state, never the solver's iterate
            losses = _max0(last_losses[b])
            background = 0.0
            if feeder_mw.shape[0]:
                for q in range(feeder_mw.shape[0]):
                    background += feeder_mw[q] * feeder_pu[b, t[b]]
                background *= 1e3
            total = 0.0
            for i in range(N):
                total += out[R_NET, b, i]
            shared[S_UPSTREAM, b] = -total + background + losses
            for i in range(N):
                stress = (math.hypot(out[R_NET, b, i], out[R_LOAD, b, i] * agent_f[3, i])
                          / agent_f[2, i])
                out[R_PENALTY, b, i] = agent_f[1, i] + fpar[P_FAIL] * (1.0 + stress)
                v_min[b, i], v_max[b, i] = V_FLOOR_PU, V_CEIL_PU
                demanded = 100.0 * stress  # np.maximum(last, demanded)
                last = last_pcc[b, i]
                out[R_PCC, b, i] = last if (last >= demanded or last != last) else demanded
                out[R_VVIOL, b, i], out[R_LMAX, b, i] = agent_f[4, i], LOADING_CEIL_PCT
            f_lo, f_hi = V_FLOOR_PU, V_CEIL_PU
        shared[S_LOSSES, b] = losses
        shared[S_FVMIN, b], shared[S_FVMAX, b] = f_lo, f_hi
        pcc_max = -np.inf
        for i in range(N):
            out[R_VMIN, b, i], out[R_VMAX, b, i] = v_min[b, i], v_max[b, i]
            pcc_max = max(pcc_max, out[R_PCC, b, i])
        shared[S_PCCMAX, b] = pcc_max


@njit(cache=True)
def _soc_violation(flag, dev_state, dev_par, dev):  # pragma: no cover - compiled
    """ESS state of charge outside [soc_min, soc_max] (1e-9 slack), per agent."""
    for j in range(dev.shape[0]):
        if dev[j, D_KIND] == KIND_ESS:  # par 4, 5: soc_min, soc_max
            lo, hi = dev_par[j, 4] - 1e-9, dev_par[j, 5] + 1e-9
            for b in range(flag.shape[0]):
                soc = dev_state[j, 2, b]
                flag[b, dev[j, D_AGENT]] |= not (lo <= soc and soc <= hi)


@njit(cache=True)
def _costs(out, t, dev_state, dev_par, dev, stored_start, terminal_price, steps, sign,
           cost_rows, share):  # pragma: no cover - compiled
    """Storage terminal value on last steps, the signed total of the terms booked
    (``cost_rows``, COST_TERMS order), rewards."""
    B, N = out.shape[1], out.shape[2]
    if terminal_price != 0.0:
        stored = np.zeros((B, N))  # soc x capacity summed over each agent's ESS
        for j in range(dev.shape[0]):
            if dev[j, D_KIND] == KIND_ESS:
                for b in range(B):
                    stored[b, dev[j, D_AGENT]] += dev_state[j, 2, b] * dev_par[j, 0]
        for b in range(B):
            if t[b] + 1 >= steps:
                for i in range(N):
                    out[R_TERMINAL, b, i] = terminal_price * (stored_start[b, i] - stored[b, i])
    for b in range(B):
        for i in range(N):
            total = 0.0
            for c in range(sign.shape[0]):
                total += sign[c] * out[cost_rows[c], b, i]
            out[R_TOTAL, b, i] = total
            out[R_REWARDS, b, i] = -total
        if share:
            team = 0.0
            for i in range(N):
                team += out[R_REWARDS, b, i]
            for i in range(N):
                out[R_REWARDS, b, i] = team


@njit(cache=True)
def _advance(out, shared, live, t, needs_reset, last_price, last_p2p, last_grid, dt,
             steps):  # pragma: no cover - compiled
    """The state a step leaves: last price and exchanges, the clock, episode ends."""
    B, N = out.shape[1], out.shape[2]
    for b in range(B):
        p = shared[S_PRICE, b]
        last_price[b] = 0.0 if p != p else p
        for i in range(N):
            last_p2p[b, i] = out[R_SOLD, b, i] - out[R_BOUGHT, b, i]
            last_grid[b, i] = out[R_NET, b, i] * dt - out[R_SOLD, b, i] + out[R_BOUGHT, b, i]
        if live[b]:
            t[b] += 1
            if t[b] >= steps:
                needs_reset[b] = True


@njit(cache=True)
def _k_dispatch(acts, t, pv, load_kw, dev_state, dev_clip, out, flags, shared, X, fv, iv,
                h):  # pragma: no cover - compiled
    """K1: the devices step (net kW, cost buckets, limits, PF set-points); no price yet."""
    ipar = i1(iv, h, I_PAR)
    _dispatch(acts, t, pv, load_kw, dev_state, dev_clip, f2(fv, h, F_DEV_PAR), i2(iv, h, I_DEV),
              f1(fv, h, F_PAR)[P_DT], out, flags[0], X, ipar[Q_NLOAD], ipar[Q_NSGEN],
              ipar[Q_NSTORAGE])
    for b in range(acts.shape[0]):
        shared[S_PRICE, b] = np.nan


@njit(cache=True)
def _k_grid(acts, retail, feed_in, t, feeder_pu, out, shared, X, ok, vm, loading, slack, live,
            book, log, ends, fv, iv, h, V, pfv, piv, ph):  # pragma: no cover - compiled
    """K2: the compiled clearing (when the market has one), the residual with the grid at
    the (B,) tariff, the power flow. False when a row did not converge."""
    fpar, ipar = f1(fv, h, F_PAR), i1(iv, h, I_PAR)
    dt = fpar[P_DT]
    if ipar[Q_CLEAR]:
        _market(acts, i1(iv, h, I_PRICE_COL), retail, feed_in, dt, fpar[P_FEE], ipar[Q_CODE],
                fpar[P_K], out, shared[S_PRICE], live, book, log, ends)
    _settle(out, retail, feed_in, dt)
    _loads(out, t, feeder_pu, X, i1(iv, h, I_LOAD_OWNER), f1(fv, h, F_LOAD_SHARE),
           f1(fv, h, F_LOAD_Q), i1(iv, h, I_FEEDER_ROWS), f1(fv, h, F_FEEDER_MW))
    solve_packed(X, V, ok, vm, loading, slack, CHUNK, pfv, piv, ph)
    for b in range(ok.shape[0]):
        if not ok[b]:
            return False
    return True


@njit(cache=True)
def _k_check(out, flags, ok, vm, loading, slack, shared, last_losses, last_pcc, v_min, v_max, t,
             feeder_pu, dev_state, fv, iv, h):  # pragma: no cover - compiled
    """K3: safety on the power flow's results, state-of-charge flags."""
    fpar, ipar = f1(fv, h, F_PAR), i1(iv, h, I_PAR)
    _safety(out, ok, vm, loading, slack, shared, last_losses, last_pcc, v_min, v_max, t,
            feeder_pu, fpar, f2(fv, h, F_AGENT), f1(fv, h, F_FEEDER_MW), i1(iv, h, I_BUS_PTR),
            i1(iv, h, I_BUS_IDX), i1(iv, h, I_LINE_PTR), i1(iv, h, I_LINE_IDX),
            i1(iv, h, I_FEEDER_BUSES), i1(iv, h, I_PCC) + ipar[Q_NLINE])
    _soc_violation(flags[1], dev_state, f2(fv, h, F_DEV_PAR), i2(iv, h, I_DEV))


@njit(cache=True)
def _k_close(out, shared, live, t, needs_reset, last_price, last_p2p, last_grid, dev_state,
             stored_start, fv, iv, h):  # pragma: no cover - compiled
    """K4: costs and rewards, then the state update."""
    fpar, ipar = f1(fv, h, F_PAR), i1(iv, h, I_PAR)
    _costs(out, t, dev_state, f2(fv, h, F_DEV_PAR), i2(iv, h, I_DEV), stored_start,
           fpar[P_TERMINAL], ipar[Q_STEPS], f1(fv, h, F_SIGN), i1(iv, h, I_COSTS),
           ipar[Q_SHARE])
    _advance(out, shared, live, t, needs_reset, last_price, last_p2p, last_grid, fpar[P_DT],
             ipar[Q_STEPS])


@njit(cache=True)
def _finish(out, flags, ok, vm, loading, slack, shared, last_losses, last_pcc, v_min, v_max, t,
            feeder_pu, dev_state, live, needs_reset, last_price, last_p2p, last_grid,
            stored_start, fv, iv, h):  # pragma: no cover - compiled
    """K3 then K4: safety, costs, rewards and the state update."""
    _k_check(out, flags, ok, vm, loading, slack, shared, last_losses, last_pcc, v_min, v_max, t,
             feeder_pu, dev_state, fv, iv, h)
    _k_close(out, shared, live, t, needs_reset, last_price, last_p2p, last_grid, dev_state,
             stored_start, fv, iv, h)


@njit(cache=True)
def _step(acts, live, t, hours, pv, retail, feed_in, load_kw, feeder_pu, last_price, last_p2p,
          last_grid, v_min, v_max, last_losses, last_pcc, stored_start, needs_reset, dev_state,
          dev_clip, out, flags, shared, ok, vm, loading, slack, book, log, ends, fv, iv, h, X,
          V, pfv, piv, ph):  # pragma: no cover - compiled
    """The fused step: K1, K2 at the episode's tariff, then :func:`_finish` unless a row's
    power flow failed (returns False: the caller repairs those rows, then finishes)."""
    B = acts.shape[0]
    rt, ft = np.empty(B), np.empty(B)
    for b in range(B):
        rt[b], ft[b] = retail[b, t[b]], feed_in[b, t[b]]
    _k_dispatch(acts, t, pv, load_kw, dev_state, dev_clip, out, flags, shared, X, fv, iv, h)
    if not _k_grid(acts, rt, ft, t, feeder_pu, out, shared, X, ok, vm, loading, slack, live,
                   book, log, ends, fv, iv, h, V, pfv, piv, ph):
        return False
    _finish(out, flags, ok, vm, loading, slack, shared, last_losses, last_pcc, v_min, v_max, t,
            feeder_pu, dev_state, live, needs_reset, last_price, last_p2p, last_grid,
            stored_start, fv, iv, h)
    return True


@njit(cache=True)
def _observe(t, hours, pv, retail, feed_in, load_forecast, last_price, last_p2p, last_grid,
             v_min, v_max, dev_state, obs, fv, iv, h):  # pragma: no cover - compiled
    """Every agent's raw observation row: COMMON_OBS features, then its devices'."""
    ipar, agent_f = i1(iv, h, I_PAR), f2(fv, h, F_AGENT)
    steps = ipar[Q_STEPS]
    code, off, dev = i1(iv, h, I_OBS_CODE), i1(iv, h, I_OBS_OFF), i2(iv, h, I_DEV)
    hsin, hcos, dev_par = f1(fv, h, F_SIN), f1(fv, h, F_COS), f2(fv, h, F_DEV_PAR)
    B, N = obs.shape[0], off.shape[0] - 1
    feat = np.empty(N_FEATURES)
    col = np.empty(1)
    for b in range(B):
        tb = min(t[b], steps - 1)
        for i in range(N):
            peak = agent_f[0, i]
            feat[0] = load_forecast[b, tb, i] / peak
            feat[1] = load_forecast[b, tb + 1, i] / peak
            feat[2], feat[3] = pv[b, tb], pv[b, tb + 1]
            feat[4], feat[5] = hsin[hours[b, tb]], hcos[hours[b, tb]]
            feat[6], feat[7] = retail[b, tb], feed_in[b, tb]
            feat[8] = last_price[b]
            feat[9], feat[10] = last_p2p[b, i] / peak, last_grid[b, i] / peak
            feat[11], feat[12] = v_min[b, i], v_max[b, i]
            o = off[i]
            for q in range(code.shape[0]):
                obs[b, o + q] = feat[code[q]]
            o += code.shape[0] + ipar[Q_GAP]  # the ahead market's columns: the caller's
            for j in range(dev.shape[0]):
                if dev[j, D_AGENT] == i:
                    observe_twin(dev[j, D_KIND], dev_state[j, :, b:b + 1], dev_par[j], col)
                    obs[b, o] = col[0]
                    o += 1


# the fused kernels inline compiled code of these modules: recompile when they change
cache_depends_on((_step, _k_dispatch, _k_grid, _k_check, _k_close, _finish, _observe),
                 "heron.market.batched", "powergrid.core.market", "powergrid.core.packing",
                 "powergrid.core.powerflow", "powergrid.devices.batched",
                 "powergrid.envs.safety")
