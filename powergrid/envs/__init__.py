"""Environments: the PettingZoo ``MultiAgentMicrogrids`` and its batched twin.

The env classes are imported lazily (PEP 562): ``powergrid.core`` reads helpers from this
package (series, safety), and an eager import of the envs here would make the core and
the envs import each other.
"""

from importlib import import_module

from powergrid.envs.config import EnvConfig, MicrogridSpec, default_microgrids

__all__ = ["EnvConfig", "MicrogridSpec", "MultiAgentMicrogrids", "VectorMicrogrids",
           "default_microgrids"]

_LAZY = {"MultiAgentMicrogrids": "powergrid.envs.multi_agent_microgrids",
         "VectorMicrogrids": "powergrid.envs.vector"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'powergrid.envs' has no attribute {name!r}")
