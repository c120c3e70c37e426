"""Common interface for AC power-flow backends.

RL environments call power flow every step, so the interface is deliberately
tiny: element set-points in, a flat :class:`PFResult` of numpy arrays out.
Backends (pandapower reference, fast fixed point) are interchangeable, in the
spirit of grid2op / lightsim2grid backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import pandapower as pp

__all__ = ["PFResult", "PowerFlowSolver"]


@dataclass(frozen=True)
class PFResult:
    """Power-flow outcome; every field gains a leading batch axis for batched solves.

    Element arrays follow the row order of the pandapower tables (``net.bus``,
    ``net.line``, ``net.trafo``) so callers can index them like ``net.res_*``.
    Outputs are always finite: a failed solve is flagged by ``converged=False``
    instead of raising or returning NaN, so an env can penalise it and move on.
    The numbers of a failed solve are no physical state and differ between backends
    (fast: the no-load profile; pandapower: the last good result); the envs never read
    them (``powergrid.envs.safety``).
    """

    converged: bool | np.ndarray
    iterations: int | np.ndarray
    vm_pu: np.ndarray
    va_degree: np.ndarray
    line_p_from_mw: np.ndarray
    line_loading_percent: np.ndarray
    trafo_loading_percent: np.ndarray
    p_slack_mw: float | np.ndarray
    q_slack_mvar: float | np.ndarray
    losses_mw: float | np.ndarray


class PowerFlowSolver(ABC):
    """AC power flow on a pandapower net whose topology and element set are fixed.

    Only the active/reactive set-points of loads, sgens and storages change between
    solves; sgen/storage reactive power is optional (0 when not given, whatever the net
    holds). Signs follow pandapower: load consumes, sgen injects (``q_mvar > 0``
    injects reactive power), storage ``p_mw > 0`` is charging and ``q_mvar > 0``
    consumes reactive power.
    """

    def __init__(self, net: pp.pandapowerNet) -> None:
        self.n_load = len(net.load)
        self.n_sgen = len(net.sgen)
        self.n_storage = len(net.storage)
        # None arguments fall back to the set-points the net was built with.
        self._defaults = (
            net.load["p_mw"].to_numpy(dtype=float).copy(),
            net.load["q_mvar"].to_numpy(dtype=float).copy(),
            net.sgen["p_mw"].to_numpy(dtype=float).copy(),
            net.storage["p_mw"].to_numpy(dtype=float).copy(),
            np.zeros(self.n_sgen),
            np.zeros(self.n_storage),
        )

    def solve(
        self,
        load_p_mw: np.ndarray | None = None,
        load_q_mvar: np.ndarray | None = None,
        sgen_p_mw: np.ndarray | None = None,
        storage_p_mw: np.ndarray | None = None,
        sgen_q_mvar: np.ndarray | None = None,
        storage_q_mvar: np.ndarray | None = None,
    ) -> PFResult:
        """Solve for the given set-points; ``(B, n)`` inputs give a batched result."""
        arrays, batched = self._prepare(load_p_mw, load_q_mvar, sgen_p_mw, storage_p_mw,
                                        sgen_q_mvar, storage_q_mvar)
        return self._solve(*arrays, batched=batched)

    @abstractmethod
    def _solve(self, lp: np.ndarray, lq: np.ndarray, sp: np.ndarray, stp: np.ndarray,
               sq: np.ndarray, stq: np.ndarray, *, batched: bool) -> PFResult:
        """Backend work on validated ``(B, n)`` set-points (B = 1 when not ``batched``)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the warm start (e.g. at episode reset) so results are history-free."""

    def _prepare(
        self,
        load_p_mw: np.ndarray | None,
        load_q_mvar: np.ndarray | None,
        sgen_p_mw: np.ndarray | None,
        storage_p_mw: np.ndarray | None,
        sgen_q_mvar: np.ndarray | None = None,
        storage_q_mvar: np.ndarray | None = None,
    ) -> tuple[list[np.ndarray], bool]:
        """Validate inputs and broadcast them to a common ``(B, n)`` shape.

        Returns the six 2-D arrays and whether the caller asked for a batch,
        so backends only ever deal with one layout.
        """
        names = ("load_p_mw", "load_q_mvar", "sgen_p_mw", "storage_p_mw", "sgen_q_mvar",
                 "storage_q_mvar")
        sizes = (self.n_load, self.n_load, self.n_sgen, self.n_storage, self.n_sgen,
                 self.n_storage)
        raw = [
            default if arr is None else np.asarray(arr, dtype=float)
            for arr, default in zip(
                (load_p_mw, load_q_mvar, sgen_p_mw, storage_p_mw, sgen_q_mvar, storage_q_mvar),
                self._defaults
            )
        ]
        batch = None
        for name, size, a in zip(names, sizes, raw):
            if a.ndim not in (1, 2) or a.shape[-1] != size:
                raise ValueError(f"{name} must have shape ({size},) or (B, {size}), got {a.shape}")
            if a.ndim == 2:
                if batch is not None and a.shape[0] != batch:
                    raise ValueError(f"{name} has batch size {a.shape[0]}, expected {batch}")
                batch = a.shape[0]
        if batch is None:  # hot path of a single env step: no broadcasting needed
            return [a[None, :] for a in raw], False
        return [np.broadcast_to(a, (batch, a.shape[-1])) for a in raw], True
