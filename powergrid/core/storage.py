"""Energy held in storage and its value at the horizon, for one env or a batch alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def stored_kwh(ess_groups: Sequence[Sequence[Any]]) -> list[Any]:
    """Per microgrid, the energy in its ESS devices (``stored_kwh()``: soc x capacity), kWh.

    A device's ``stored_kwh()`` is a float (scalar device) or a (B,) array (batched
    device, ``powergrid.devices.batched``); the sum is the same expression either way, so
    a batch row equals the scalar env bit for bit.
    """
    return [sum(d.stored_kwh() for d in ess) for ess in ess_groups]


def storage_terminal(price: float, start: Sequence[Any], now: Sequence[Any]) -> list[Any]:
    """``price`` x the energy each microgrid's batteries lost over the episode, $.

    Why: without it energy left in a battery at the horizon is worth nothing, so every
    policy (and the optimum) is paid to drain the batteries by the last hour.
    """
    if price == 0.0:
        return [0.0] * len(start)
    return [price * (e0 - e1) for e0, e1 in zip(start, now, strict=True)]
