"""powergrid: the power-system domain of heron-grid (devices, IEEE-13 networks, fast AC power
flow, offline profiles and multi-agent environments)."""

__version__ = "0.1.0"
