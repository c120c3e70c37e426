"""AC power-flow backends behind one small interface (see :class:`PowerFlowSolver`).

``make_solver(net)`` gives the fast fixed-point solver used by the envs;
``make_solver(net, "pandapower")`` gives the slow reference.
"""

from __future__ import annotations

import pandapower as pp

from powergrid.pf.base import PFResult, PowerFlowSolver
from powergrid.pf.fast import FastSolver
from powergrid.pf.model import NetworkModel
from powergrid.pf.pandapower_backend import PandapowerSolver

__all__ = ["FastSolver", "NetworkModel", "PFResult", "PandapowerSolver", "PowerFlowSolver", "SOLVER_KINDS",
           "make_solver"]

SOLVER_KINDS: dict[str, type[PowerFlowSolver]] = {
    "fast": FastSolver,
    "pandapower": PandapowerSolver,
}


def make_solver(net: pp.pandapowerNet, kind: str = "fast", **kwargs) -> PowerFlowSolver:
    """Build a solver by name so env configs can switch backends with a string."""
    try:
        cls = SOLVER_KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown power-flow solver kind {kind!r}; choose one of {sorted(SOLVER_KINDS)}"
        ) from None
    return cls(net, **kwargs)
