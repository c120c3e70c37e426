"""The scalar env's step infos: one step of the core's output, rendered through each
agent's info schema by a function compiled once (``NestedRenderer.compile``).

The core reports per-agent values as one list per key and shared values as one list; a
plan maps those positions (and the env's own values) onto each agent's nested infos, so
a step builds each agent's dicts in one call instead of merging and walking dicts.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from powergrid.core.infos import NestedRenderer
from powergrid.devices import PowerDevice

# the env's values every agent shares, after the core's shared outputs (they override them)
COMMON = ("hour", "day", "clearing_price", "retail_price", "feed_in_price",
          "market/volume_kwh")
# each agent's own values, after its device leaves
OWN = ("action_clipped", "market/orders", "market/trades")


@dataclass(frozen=True)
class InfoPlan:
    """Where one step's values sit, for one set of core output keys (fixed per env)."""

    keys: tuple[tuple[str, ...], tuple[str, ...]]  # (per-agent keys, shared keys)
    renders: tuple[Callable[..., dict[str, Any]], ...]  # per microgrid, in order
    readers: tuple[tuple[tuple[PowerDevice, Callable], ...], ...]  # per microgrid
    net_kw: int                  # positions in the per-agent lists
    total: int
    upstream: int                # positions in the shared list
    losses: int

    @classmethod
    def build(cls, keys: tuple[tuple[str, ...], tuple[str, ...]],
              renderers: Sequence[NestedRenderer],
              device_keys: Sequence[Sequence[tuple[PowerDevice, tuple[str, ...]]]]
              ) -> InfoPlan:
        per, shared = keys
        renders, readers = [], []
        for renderer, devices in zip(renderers, device_keys):
            leaves = [f"devices/{d.name}/{k}" for d, ks in devices for k in ks]
            renders.append(renderer.compile((*shared, *COMMON), per, (*leaves, *OWN)))
            readers.append(tuple((d, operator.attrgetter(*ks)) for d, ks in devices))
        return cls(keys, tuple(renders), tuple(readers), per.index("net_kw"),
                   per.index("costs/total"), shared.index("upstream_import_kw"),
                   shared.index("network_losses_kw"))

    @staticmethod
    def device_values(readers: tuple[tuple[PowerDevice, Callable], ...]) -> list[Any]:
        """The live devices' info attributes, in the schema's leaf order."""
        values: list[Any] = []
        for device, read in readers:  # every device reports p_kw and cost: a tuple
            values += read(device)
        return values


def split_market(agents: Sequence[str], orders: Sequence[Any], trades: Sequence[Any] | None
                 ) -> tuple[Mapping[str, list], Mapping[str, list]]:
    """Each agent's orders and its trades (as buyer or seller), in the market's order;
    fresh lists every step (users keep infos)."""
    mine: dict[str, list] = {a: [] for a in agents}
    for o in orders:
        own = mine.get(o.agent)
        if own is not None:
            own.append(o)
    deals: dict[str, list] = {a: [] for a in agents}
    for tr in trades or ():
        for side in (tr.buyer, tr.seller) if tr.buyer != tr.seller else (tr.buyer,):
            own = deals.get(side)
            if own is not None:
                own.append(tr)
    return mine, deals
