"""The scalar env's step infos: one step of the core's output, rendered through each
agent's info schema by one function generated once (``NestedRenderer.display``).

The core reports its outputs as two tables (``powergrid.core.rows.RowTable``: per-agent
and shared values as rows of a few stacked arrays); a plan resolves, once per pair of
table layouts, where each leaf of each agent's nested infos comes from (a table row, the
env's values of the step, a live device attribute), so a step reads the tables with one
``tolist()`` per array and builds every agent's dicts in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from powergrid.core.infos import NestedRenderer, generated
from powergrid.core.rows import RowLayout, Slot
from powergrid.devices import PowerDevice

# the env's values every agent shares (``e`` of the render), after the core's shared
# outputs (they override them: the env reports None for "no clearing price", the core NaN)
COMMON = ("hour", "day", "clearing_price", "retail_price", "feed_in_price",
          "market/volume_kwh", "start_day")
# render(S, P, e, D, c, m, d, f) -> {agent: infos}: the shared and the per-agent tables' row
# lists (``lists(0)``), COMMON, per microgrid its live devices, then each microgrid's own
# values: action clipped (list), orders and trades (by agent), observation clipped (list)
PARAMS = "S, P, e, D, c, m, d, f"
OWN = {"action_clipped": "c[{i}]", "market/orders": "m[{a!r}]", "market/trades": "d[{a!r}]",
       "obs_clipped": "f[{i}]"}

Render = Callable[..., dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class InfoPlan:
    """Where one step's values sit, for one pair of core output layouts (fixed per env)."""

    per: RowLayout               # the per-agent table's layout it reads
    shared: RowLayout            # the shared table's
    render: Render               # every microgrid's infos in one generated call
    devices: tuple[tuple[PowerDevice, ...], ...]  # per microgrid: D of the render
    net_kw: Slot                 # in the per-agent table
    total: Slot
    upstream: Slot               # in the shared table
    losses: Slot

    @classmethod
    def build(cls, per: RowLayout, shared: RowLayout, agents: Sequence[str],
              renderers: Sequence[NestedRenderer],
              device_keys: Sequence[Sequence[tuple[PowerDevice, tuple[str, ...]]]]
              ) -> InfoPlan:
        source = {n: _expr("S", slot) for n, slot in shared.where.items()}
        source.update((n, f"e[{k}]") for k, n in enumerate(COMMON))
        sources = []
        for i, (a, devices) in enumerate(zip(agents, device_keys)):
            mine = dict(source)
            mine.update((n, f"{_expr('P', slot)}[{i}]") for n, slot in per.where.items())
            mine.update((f"devices/{d.name}/{k}", f"D[{i}][{j}].{k}")  # device_info_keys
                        for j, (d, keys) in enumerate(devices) for k in keys)
            mine.update((n, template.format(i=i, a=a)) for n, template in OWN.items())
            sources.append(mine)

        def body(const: Callable[[Any], str], lines: list[str]) -> str:
            return "{" + ", ".join(f"{a!r}: {r.display(src, const, lines)}"
                                   for a, r, src in zip(agents, renderers, sources)) + "}"

        return cls(per, shared, generated(PARAMS, body),
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
