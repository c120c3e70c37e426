"""Observation layout and cost terms: the tables both envs read, defined once.

Adding an observation feature is one row in ``COMMON_OBS`` (and its value in each env's
feature mapping, keyed by the label); adding a cost term is one row in ``COST_TERMS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from powergrid.envs.spaces import EXCHANGE_BOUND, PER_PEAK, PRICE, Feature

# (label, low, high, unit) of the features every agent observes, before its device
# features; units and the reasoning behind each bound are in powergrid.envs.spaces.
COMMON_OBS: tuple[Feature, ...] = (
    ("load_now", 0.0, 5.0, ""),             # expected load this step (mean) / peak load
    ("load_next", 0.0, 5.0, ""),            # expected load next step (mean) / peak load
    ("pv_now", 0.0, 2.0, ""),               # PV available per kW installed, mean this step
    ("pv_next", 0.0, 2.0, ""),              # ... next step
    ("hour_sin", -1.0, 1.0, ""),
    ("hour_cos", -1.0, 1.0, ""),
    ("retail_price", 0.0, 1.0, PRICE),      # $/kWh, time mean over this step
    ("feed_in_price", 0.0, 1.0, PRICE),     # $/kWh, time mean over this step
    ("last_clearing_price", 0.0, 1.0, PRICE),  # $/kWh, 0 when nothing cleared
    ("last_p2p_kwh", -EXCHANGE_BOUND, EXCHANGE_BOUND, PER_PEAK),  # sold - bought / peak load
    ("last_grid_kwh", -EXCHANGE_BOUND, EXCHANGE_BOUND, PER_PEAK),  # export - import / peak
    ("v_min_pu", 0.0, 2.0, ""),             # own feeder, last power flow
    ("v_max_pu", 0.0, 2.0, ""),
)
COMMON_LABELS: tuple[str, ...] = tuple(f[0] for f in COMMON_OBS)

# (term, sign) of every cost in $, in the order infos list them: revenues count negative.
COST_TERMS: tuple[tuple[str, float], ...] = (
    ("generation", 1.0), ("degradation", 1.0), ("other_devices", 1.0), ("grid_import", 1.0),
    ("grid_export_revenue", -1.0), ("p2p_payment", 1.0), ("p2p_revenue", -1.0),
    ("fees", 1.0), ("safety_penalty", 1.0), ("tracking_penalty", 1.0),
    ("storage_terminal", 1.0),
    # only with market_timing="ahead" (powergrid.core.ahead): deviation from the commitment
    ("imbalance", 1.0),
    # only with network_costs=True (powergrid.network_costs)
    ("network_losses", 1.0), ("network_violation", 1.0),
)
COST_SIGNS: dict[str, float] = dict(COST_TERMS)
# the cost terms a device books its ``cost`` under (its class's ``cost_term``)
DEVICE_COSTS: tuple[str, ...] = ("generation", "degradation", "other_devices")
COST_NAMES: tuple[str, ...] = tuple(COST_SIGNS)


def cost_total(costs: Mapping[str, Any]) -> Any:
    """The signed sum of the terms present (floats or arrays alike), in ``COST_TERMS`` order."""
    return sum(sign * costs[name] for name, sign in COST_TERMS if name in costs)


def common_features(values: Mapping[str, Any]) -> list[Any]:
    """``values`` (label -> value) in ``COMMON_OBS`` order."""
    return [values[label] for label in COMMON_LABELS]
