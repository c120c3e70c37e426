"""The scalar env's step infos: one step of the core's output, rendered through each
agent's info schema by a function generated once (``NestedRenderer.function``).

The core reports its outputs as two tables (``powergrid.core.rows.RowTable``: per-agent
and shared values as rows of a few stacked arrays); a plan resolves, once per pair of
table layouts, where each leaf of each agent's nested infos comes from (a table row, the
env's values of the step, a live device attribute), so a step reads the tables with one
``tolist()`` per array and builds each agent's dicts in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from powergrid.core.infos import NestedRenderer
from powergrid.core.rows import RowLayout, Slot
from powergrid.devices import PowerDevice

# the env's values every agent shares (``e`` of a render), after the core's shared outputs
# (they override them: the env reports None for "no clearing price", the core NaN)
COMMON = ("hour", "day", "clearing_price", "retail_price", "feed_in_price",
          "market/volume_kwh", "start_day")
# each agent's own values (``x`` of a render), after its device leaves
OWN = ("action_clipped", "market/orders", "market/trades", "obs_clipped")
# render(S, P, i, e, D, x): the shared and the per-agent tables' row lists (``lists(0)``),
# the agent's index, COMMON, the agent's live devices, OWN
PARAMS = "S, P, i, e, D, x"

Render = Callable[[list, list, int, Sequence, Sequence[PowerDevice], Sequence], dict[str, Any]]


@dataclass(frozen=True)
class InfoPlan:
    """Where one step's values sit, for one pair of core output layouts (fixed per env)."""

    per: RowLayout               # the per-agent table's layout it reads
    shared: RowLayout            # the shared table's
    renders: tuple[Render, ...]  # per microgrid, in order
    devices: tuple[tuple[PowerDevice, ...], ...]  # per microgrid: D of its render
    net_kw: Slot                 # in the per-agent table
    total: Slot
    upstream: Slot               # in the shared table
    losses: Slot

    @classmethod
    def build(cls, per: RowLayout, shared: RowLayout, renderers: Sequence[NestedRenderer],
              device_keys: Sequence[Sequence[tuple[PowerDevice, tuple[str, ...]]]]
              ) -> InfoPlan:
        source = {n: _expr("S", slot) for n, slot in shared.where.items()}
        source.update((n, f"e[{k}]") for k, n in enumerate(COMMON))
        source.update((n, _expr("P", slot) + "[i]") for n, slot in per.where.items())
        renders = []
        for renderer, devices in zip(renderers, device_keys):
            mine = dict(source)
            mine.update((f"devices/{d.name}/{k}", f"D[{j}].{k}")  # device_info_keys: names
                        for j, (d, keys) in enumerate(devices) for k in keys)
            mine.update((n, f"x[{k}]") for k, n in enumerate(OWN))
            renders.append(renderer.function(PARAMS, mine))
        return cls(per, shared, tuple(renders),
                   tuple(tuple(d for d, _ in devices) for devices in device_keys),
                   per.where["net_kw"], per.where["costs/total"],
                   shared.where["upstream_import_kw"], shared.where["network_losses_kw"])

    def fits(self, per: RowLayout, shared: RowLayout) -> bool:
        """Whether this plan reads tables of these layouts (the same objects every step
        of the compiled core; equal ones when a Python stage extends the tables)."""
        return (per is self.per and shared is self.shared) or (
            per == self.per and shared == self.shared)


def _expr(table: str, slot: Slot) -> str:
    a, row = slot
    return f"{table}[{a}]" if row is None else f"{table}[{a}][{row}]"


def slot_value(lists: list, slot: Slot) -> Any:
    """The value at ``slot`` of a table's ``lists(b)``."""
    a, row = slot
    return lists[a] if row is None else lists[a][row]


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
        buyer, seller = tr.buyer, tr.seller
        own = deals.get(buyer)
        if own is not None:
            own.append(tr)
        if seller != buyer:
            own = deals.get(seller)
            if own is not None:
                own.append(tr)
    return mine, deals
