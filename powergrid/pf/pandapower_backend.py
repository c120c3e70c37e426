"""Reference backend: plain ``pandapower.runpp`` behind the :class:`PowerFlowSolver` API.

Slow (tens of ms per solve) but authoritative; used to validate the fast
backend and whenever full ``net.res_*`` tables are needed.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings

import numpy as np
import pandapower as pp
from pandapower.auxiliary import ppException

from powergrid.pf.base import PFResult, PowerFlowSolver

__all__ = ["PandapowerSolver"]

_HAVE_NUMBA = importlib.util.find_spec("numba") is not None


class PandapowerSolver(PowerFlowSolver):
    """Writes set-points into a private deep copy of the net and runs ``pp.runpp``.

    ``.net`` is that solved copy, so callers can read every ``res_*`` table.
    Warm-starts from the previous converged result; a failure falls back to
    the last good result (or a flat profile) flagged ``converged=False``.
    """

    def __init__(self, net: pp.pandapowerNet, **runpp_kwargs) -> None:
        super().__init__(net)
        self.net = copy.deepcopy(net)
        self._runpp_kwargs = {"numba": _HAVE_NUMBA, **runpp_kwargs}
        self._warm = False
        self._last: PFResult | None = None

    def reset(self) -> None:
        self._warm = False
        self._last = None

    def _solve(self, lp: np.ndarray, lq: np.ndarray, sp: np.ndarray, stp: np.ndarray,
               sq: np.ndarray, stq: np.ndarray, *, batched: bool) -> PFResult:
        results = [self._solve_one(lp[b], lq[b], sp[b], stp[b], sq[b], stq[b])
                   for b in range(lp.shape[0])]
        if not batched:
            return results[0]
        return PFResult(
            **{
                f: np.stack([np.asarray(getattr(r, f)) for r in results])
                for f in PFResult.__dataclass_fields__
            }
        )

    def _solve_one(self, lp: np.ndarray, lq: np.ndarray, sp: np.ndarray, stp: np.ndarray,
                   sq: np.ndarray, stq: np.ndarray) -> PFResult:
        net = self.net
        net.load["p_mw"] = lp
        net.load["q_mvar"] = lq
        net.sgen["p_mw"] = sp
        net.storage["p_mw"] = stp
        net.sgen["q_mvar"] = sq
        net.storage["q_mvar"] = stq
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp(net, init="results" if self._warm else "auto", **self._runpp_kwargs)
        except (ppException, ArithmeticError, np.linalg.LinAlgError, ValueError):
            return self._failed()
        res = self._collect()
        # runpp can "succeed" with NaNs (e.g. a degenerate Jacobian); treat as failure.
        if not all(np.all(np.isfinite(getattr(res, f))) for f in ("vm_pu", "va_degree",
                                                                 "line_p_from_mw")):
            return self._failed()
        self._warm = True
        self._last = res
        return res

    def _collect(self) -> PFResult:
        net = self.net
        # Isolated / out-of-service buses are NaN in pandapower; the interface
        # promises finite numbers, so report them as dead (0).
        fin = np.nan_to_num
        p_slack = float(net.res_ext_grid["p_mw"].sum())
        inj = (
            p_slack
            + float(net.res_sgen["p_mw"].sum())
            - float(net.res_load["p_mw"].sum())
            - float(net.res_storage["p_mw"].sum())
        )
        # pandapower keeps the Newton-Raphson iteration count only in its private ppc
        ppc = net._ppc
        return PFResult(
            converged=True,
            iterations=int(ppc["iterations"]) if "iterations" in ppc else -1,
            vm_pu=fin(net.res_bus["vm_pu"].to_numpy(dtype=float)),
            va_degree=fin(net.res_bus["va_degree"].to_numpy(dtype=float)),
            line_p_from_mw=fin(net.res_line["p_from_mw"].to_numpy(dtype=float)),
            line_loading_percent=fin(net.res_line["loading_percent"].to_numpy(dtype=float)),
            trafo_loading_percent=fin(net.res_trafo["loading_percent"].to_numpy(dtype=float)),
            p_slack_mw=p_slack,
            q_slack_mvar=float(net.res_ext_grid["q_mvar"].sum()),
            losses_mw=inj,
        )

    def _failed(self) -> PFResult:
        # runpp leaves NaN results behind; a warm start from them would fail forever.
        self._warm = False
        if self._last is not None:
            base = self._last
        else:
            base = PFResult(
                converged=False,
                iterations=0,
                vm_pu=np.ones(len(self.net.bus)),
                va_degree=np.zeros(len(self.net.bus)),
                line_p_from_mw=np.zeros(len(self.net.line)),
                line_loading_percent=np.zeros(len(self.net.line)),
                trafo_loading_percent=np.zeros(len(self.net.trafo)),
                p_slack_mw=0.0,
                q_slack_mvar=0.0,
                losses_mw=0.0,
            )
        return PFResult(**{**base.__dict__, "converged": False, "iterations": 0})
