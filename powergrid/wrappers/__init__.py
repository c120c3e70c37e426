"""Views of the env for the tools users already have.

* :class:`SharedSpaces`: identical, label-aligned spaces for all microgrids (shared
  policies, SuperSuit, RLlib), with an agent indicator.
* :class:`FlatInfos`: flat numeric infos with fixed keys (TorchRL's ``PettingZooWrapper``).
* :class:`CentralizedMicrogrids`: one policy for every microgrid as a single-agent
  ``gymnasium.Env``, registered as ``"heron-grid/CentralizedMicrogrids-v0"``.
"""

from powergrid.wrappers.centralized import ENV_ID, CentralizedMicrogrids
from powergrid.wrappers.flat_infos import FlatInfos, flatten
from powergrid.wrappers.shared_spaces import SharedSpaces

__all__ = ["ENV_ID", "CentralizedMicrogrids", "FlatInfos", "SharedSpaces", "flatten"]
