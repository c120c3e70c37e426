"""heron: a domain-free core for multi-agent coordination (agents, devices, protocols, markets)."""

__version__ = "0.1.0"
