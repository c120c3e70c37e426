"""Environments: the PettingZoo ``MultiAgentMicrogrids`` and its batched twin."""

from powergrid.envs.config import EnvConfig, MicrogridSpec, default_microgrids
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids

__all__ = ["EnvConfig", "MicrogridSpec", "MultiAgentMicrogrids", "VectorMicrogrids",
           "default_microgrids"]
