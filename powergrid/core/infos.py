"""The info schema: every key an agent's ``infos`` entry has, defined once.

Each :class:`InfoField` names one leaf: its path in the scalar env's nested infos, its
value before anything was measured (what ``reset()`` reports, with ``step()``'s
structure, so TorchRL-style specs and info stacking see one shape all episode), and, when
the vector env reports it, the name of its flat ``(B,)`` array and the value of a row
that was autoreset on this step. The scalar env's nested dicts (``None`` when nothing
cleared, ``Order``/``Trade`` lists) and the vector env's flat arrays (NaN) are two
renderings of these rows.

A new info key is one row here; ``tests/test_ecosystem.py`` holds ``step()``'s infos to
this structure for every coordination set-up.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from powergrid.core.layout import COST_NAMES
from powergrid.core.rows import RowLayout
from powergrid.devices import ESS, PowerDevice, Solar
from powergrid.network_costs import NETWORK_COST_TERMS, NETWORK_DSO_KEYS

NAN = math.nan
COMM_KEYS = ("sent", "delivered", "dropped", "stale", "received")


@dataclass(frozen=True)
class InfoField:
    """One info leaf: nested path, value before the first step, flat vector rendering."""

    path: tuple[str, ...]
    neutral: Any = NAN            # the scalar env's reset() value (lists are copied)
    flat: str | None = None       # the vector env's key (``costs/x`` nests under costs)
    idle: Any = 0.0               # the vector value on a row autoreset this step
    dtype: type = float           # of the flat array


def _f(*path: str, neutral: Any = NAN, flat: bool | str = False, idle: Any = 0.0,
       dtype: type = float) -> InfoField:
    name = (path[-1] if flat is True else flat) or None
    return InfoField(tuple(path), neutral, name, idle, dtype)


def device_info_keys(device: PowerDevice) -> tuple[str, ...]:
    """Attributes of ``device`` its info entry reports (power and cost, plus state)."""
    extra = ("soc",) if isinstance(device, ESS) else (
        ("available_kw",) if isinstance(device, Solar) else ())
    return ("p_kw", "cost", *extra, *(("q_kvar",) if device.reactive else ()))


AHEAD_TERMS = ("imbalance",)


def microgrid_schema(devices: Sequence[PowerDevice], vertical: dict[str, Any] | None = None,
                     consensus: bool = False, network_costs: bool = False,
                     ahead: bool = False) -> tuple[InfoField, ...]:
    """Rows of one microgrid's infos, in the order ``step()`` reports them.

    ``vertical`` is the constant part of the vertical protocol's info (protocol, mode)
    plus its measured keys mapped to None; ``consensus`` adds the consensus record;
    ``ahead`` the ahead market's imbalance term and volumes.
    """
    rows: list[InfoField] = [
        _f("hour", neutral=0), _f("day", neutral=0),
        _f("load_kw", flat=True), _f("net_kw", flat=True)]
    rows += [_f("devices", d.name, k) for d in devices for k in device_info_keys(d)]
    rows += [
        _f("market", "orders", neutral=[]), _f("market", "trades", neutral=[]),
        _f("market", "clearing_price", neutral=None, flat=True, idle=NAN),
        _f("market", "volume_kwh"),
        _f("market", "bought_kwh", flat=True), _f("market", "sold_kwh", flat=True)]
    if ahead:  # delivered this step: shortfall bought / excess sold at imbalance prices
        rows += [_f("market", "shortfall_kwh", flat=True),
                 _f("market", "excess_kwh", flat=True)]
    if consensus:
        rows += [_f("market", "consensus", k, neutral=v) for k, v in (
            ("price", NAN), ("iterations", 0), ("converged", False), ("residual", NAN),
            ("participants", []))]
    rows += [
        _f("grid_import_kwh", flat=True), _f("grid_export_kwh", flat=True),
        _f("retail_price"), _f("feed_in_price")]
    terms = [k for k in COST_NAMES if (network_costs or k not in NETWORK_COST_TERMS)
             and (ahead or k not in AHEAD_TERMS)]
    rows += [_f("costs", k, flat=f"costs/{k}") for k in (*terms, "total")]
    rows += [
        _f("action_clipped", neutral=False, flat=True, idle=False, dtype=bool),
        _f("device_limited", neutral=False, flat=True, idle=False, dtype=bool),
        _f("pf_converged", neutral=False, flat=True, idle=True, dtype=bool),
        _f("v_min_pu", flat=True, idle=1.0), _f("v_max_pu", flat=True, idle=1.0),
        _f("voltage_violation_pu", flat=True), _f("line_loading_max_pct", flat=True),
        _f("pcc_loading_pct", flat=True), _f("feeder_v_min_pu", flat=True, idle=1.0),
        _f("feeder_v_max_pu", flat=True, idle=1.0), _f("pcc_loading_max_pct", flat=True),
        _f("soc_violation", neutral=False, flat=True, idle=False, dtype=bool),
        _f("upstream_import_kw", flat=True), _f("network_losses_kw", flat=True)]
    if network_costs:
        rows += [_f(k, flat=True) for k in NETWORK_DSO_KEYS]
    rows += [_f("comm", k, neutral=0) for k in COMM_KEYS]
    if vertical:
        rows += [_f("vertical", k, neutral=NAN if v is None else v) for k, v in vertical.items()]
    return (*rows, *EPISODE_FIELDS)


def operator_schema() -> tuple[InfoField, ...]:
    """Rows of the learning operator's (``"DSO"``) infos."""
    return (_f("aggregate_exchange", flat=True),
            _f("vertical", "protocol", neutral="price_signal"),
            _f("vertical", "mode", neutral="agent"), _f("vertical", "price"),
            *(_f("comm", k, neutral=0) for k in COMM_KEYS), _f("next_price", flat=True),
            *EPISODE_FIELDS)


# set on every step's infos (and at reset) after the step itself
EPISODE_FIELDS = (_f("start_day", neutral=0), _f("obs_clipped", neutral=False))


def nested(fields: Iterable[InfoField]) -> dict[str, Any]:
    """The scalar rendering before the first step: nested dicts of neutral values."""
    out: dict[str, Any] = {}
    for f in fields:
        node = out
        for key in f.path[:-1]:
            node = node.setdefault(key, {})
        node[f.path[-1]] = copy.copy(f.neutral)
    return out


def flat_fields(fields: Iterable[InfoField]) -> tuple[InfoField, ...]:
    """The rows the vector env reports."""
    return tuple(f for f in fields if f.flat is not None)


class FlatRenderer:
    """The vector rendering of a schema, planned once (it runs every step).

    ``render(values, idle)``: ``values[flat name]`` (B,) arrays, ``costs/*`` nested under
    ``costs``; rows where ``idle`` is True get each field's idle value. ``render_row``
    takes one agent's row ``i`` of (N, B) per-agent arrays and the (B,) shared ones.
    """

    def __init__(self, fields: Iterable[InfoField]) -> None:
        self.fields = flat_fields(fields)
        self._plan = tuple((f.flat, f.flat[6:] if f.flat.startswith("costs/") else None,
                            f.idle, f.dtype) for f in self.fields)

    def render(self, values: dict[str, np.ndarray], idle: np.ndarray | None = None
               ) -> dict[str, Any]:
        return self.render_row({}, values, 0,
                               idle if idle is not None and idle.any() else None)

    def compile(self, per_agent: RowLayout, own: Sequence[str], shared: Sequence[str],
                tail: Sequence[str] = ()) -> Callable[[Sequence[np.ndarray],
                                                       Sequence[np.ndarray],
                                                       Sequence[np.ndarray], int],
                                                      dict[str, Any]]:
        """:meth:`render_row` with no idle row, as one generated function ``f(P, X, S, i)``:
        the field named ``n`` is ``P[a][r, i]`` (or ``P[a][i]``) for ``per_agent.where[n] =
        (a, r)`` over the arrays ``P`` of a :meth:`RowTable.swapped` table, else
        ``X[j][i]`` for ``own[j] = n`` ((N, B) arrays of the caller), else ``S[j]`` for
        ``shared[j] = n`` ((B,) arrays); the names of ``tail`` (the caller's own keys,
        from ``own`` or ``shared``) follow the schema's fields. One dict display per agent
        and step instead of a lookup and two views per field; an unknown field raises
        ``KeyError`` here."""
        source: dict[str, str] = {}
        for j, name in enumerate(shared):
            source[name] = f"S[{j}]"
        for j, name in enumerate(own):
            source[name] = f"X[{j}][i]"
        for name, (a, r) in per_agent.where.items():
            source[name] = f"P[{a}][i]" if r is None else f"P[{a}][{r}, i]"
        plain = [f"{name!r}: {source[name]}" for name, cost, _, _ in self._plan if cost is None]
        costs = [f"{cost!r}: {source[name]}" for name, cost, _, _ in self._plan
                 if cost is not None]
        plain += [f"{name!r}: {source[name]}" for name in tail]
        expr = "{'costs': {" + ", ".join(costs) + "}, " + ", ".join(plain) + "}"
        return generated("P, X, S, i", lambda const, lines: expr)

    def render_row(self, per_agent: dict[str, np.ndarray], shared: dict[str, np.ndarray],
                   i: int, idle: np.ndarray | None) -> dict[str, Any]:
        """``idle`` None: no row is idle (the caller checked once per step)."""
        out: dict[str, Any] = {"costs": {}}
        costs = out["costs"]
        for name, cost, idle_value, dtype in self._plan:
            rows = per_agent.get(name)
            v = shared[name] if rows is None else rows[i]
            if idle is not None:
                v = np.where(idle, idle_value, v).astype(dtype)
            if cost is None:
                out[name] = v
            else:
                costs[cost] = v
        return out


DISPLAY_MAX = 12  # keys of the largest dict a generated renderer builds as a display


def generated(params: str, body: Callable[[Callable[[Any], str], list[str]], str]
              ) -> Callable[..., Any]:
    """``def f(params): <lines>; return <expr>`` as a function, for ``expr = body(const,
    lines)``: Python source over ``params`` (``lines`` the statements ``body`` appended)
    in which ``const(value)`` names a constant (and ``copy`` is ``copy.copy``)."""
    consts: list[Any] = []
    lines: list[str] = []

    def const(value: Any) -> str:
        consts.append(value)
        return f"K[{len(consts) - 1}]"

    expr = body(const, lines)
    code = f"def render({params}):\n" + "".join(f"    {line}\n" for line in lines)
    code += f"    return {expr}\n"
    namespace: dict[str, Any] = {"K": tuple(consts), "copy": copy.copy}
    exec(compile(code, "<generated renderer>", "exec"), namespace)  # noqa: S102
    return namespace["render"]


_MISSING = object()
_COPY = object()  # plan marker: a leaf whose neutral value is mutable (copied per render)


def info_key(f: InfoField) -> str:
    """The name a field's value goes by in the renderers' inputs: its flat name, or its
    nested path joined by ``/`` (``"devices/ESS/soc"``, ``"market/orders"``)."""
    return f.flat if f.flat is not None else "/".join(f.path)


class NestedRenderer:
    """The scalar rendering of a schema (nested dicts), planned once: it runs every step.

    ``render(values)``: ``values[info_key(field)]`` is each leaf's value; a whole subtree
    may be given under its joined path instead (``values["devices"]``, a dict, or
    ``values["market/consensus"]``). A leaf without a value gets its neutral one (copied),
    so ``render({})`` is the reset rendering (:func:`nested`).
    """

    def __init__(self, fields: Iterable[InfoField]) -> None:
        self.fields = tuple(fields)
        self._plan = self._build(self.fields, 0)

    @classmethod
    def _build(cls, fields: Sequence[InfoField], depth: int) -> tuple:
        """(key, value name, neutral, None or _COPY) per leaf, (key, subtree name, None,
        subplan) per subtree, in the schema's order."""
        order: list[str] = []
        groups: dict[str, list[InfoField]] = {}
        for f in fields:
            head = f.path[depth]
            if head not in groups:
                order.append(head)
                groups[head] = []
            groups[head].append(f)
        plan = []
        for head in order:
            group = groups[head]
            if len(group) == 1 and len(group[0].path) == depth + 1:
                neutral = group[0].neutral  # copied at render time only if mutable
                plan.append((head, info_key(group[0]), neutral,
                             _COPY if isinstance(neutral, list | dict) else None))
            else:
                plan.append((head, "/".join(group[0].path[:depth + 1]), None,
                             cls._build(group, depth + 1)))
        return tuple(plan)

    def render(self, values: dict[str, Any]) -> dict[str, Any]:
        return self._render(self._plan, values)

    def compile(self, common: Sequence[str], per_agent: Sequence[str] = (),
                own: Sequence[str] = ()) -> Callable[[Sequence, Sequence, int, Sequence],
                                                     dict[str, Any]]:
        """This schema's rendering from positional values, as one generated function.

        ``f(c, p, i, x)`` renders what :meth:`render` would from the values named
        ``common[j]`` = ``c[j]``, ``per_agent[j]`` = ``p[j][i]`` (agent ``i``'s entry of
        one list per key) and ``own[j]`` = ``x[j]``; a name given twice takes its last
        group's value (as ``{**common, **per_agent, **own}``).
        """
        source: dict[str, str] = {}
        for names, template in ((common, "c[{}]"), (per_agent, "p[{}][i]"), (own, "x[{}]")):
            source.update((name, template.format(j)) for j, name in enumerate(names))
        return self.function("c, p, i, x", source)

    def function(self, params: str, source: Mapping[str, str]) -> Callable[..., dict[str, Any]]:
        """This schema's rendering as one generated function of ``params``: the leaf (or
        subtree) named ``n`` is the Python expression ``source[n]`` over them, every other
        leaf its neutral value (a fresh copy of a list). It runs every step for every agent:
        a few dict builds instead of a walk of the plan with lookups."""
        return generated(params, lambda const, lines: self.display(source, const, lines))

    def display(self, source: Mapping[str, str], const: Callable[[Any], str],
                lines: list[str]) -> str:
        """:meth:`function`'s result as a Python expression, valid after the statements it
        appends to ``lines``; ``const(value)`` names a constant (see :func:`generated`).

        A dict of more than ``DISPLAY_MAX`` keys is a copy of its template (every key, the
        neutral values in place) with the other values stored: CPython builds a display of
        many keys at about twice the cost of that copy and the stores.
        """

        def display(plan: tuple) -> str:
            exprs = []
            for key, name, neutral, sub in plan:
                expr = source.get(name)
                if expr is None and sub is not None:
                    expr = f"copy({const(neutral)})" if sub is _COPY else display(sub)
                exprs.append((key, expr, neutral))
            if len(plan) <= DISPLAY_MAX:
                return "{" + ", ".join(f"{key!r}: {const(neutral) if expr is None else expr}"
                                       for key, expr, neutral in exprs) + "}"
            name = f"_d{len(lines)}"  # unique: every such dict appends a line
            lines.append(f"{name} = {const({key: neutral for key, _, neutral in exprs})}.copy()")
            lines.extend(f"{name}[{key!r}] = {expr}" for key, expr, _ in exprs if expr is not None)
            return name

        return display(self._plan)

    def _render(self, plan: tuple, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        get = values.get
        for key, name, neutral, sub in plan:
            v = get(name, _MISSING)
            if v is not _MISSING:
                out[key] = v
            elif sub is None:
                out[key] = neutral
            elif sub is _COPY:
                out[key] = copy.copy(neutral)
            else:
                out[key] = self._render(sub, values)
        return out
