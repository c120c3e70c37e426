"""One-figure summary of an episode of ``MultiAgentMicrogrids``, built from its per-step infos.

matplotlib (a core dependency) is imported inside :func:`plot_episode` so that
``import powergrid`` stays fast and training on a headless cluster never loads it.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

History = Sequence[Mapping[str, Mapping[str, Any]]]

# Keys plot_episode reads from every agent's info; checked up front so a wrong history
# fails with one clear message instead of a KeyError deep inside matplotlib code.
REQUIRED_KEYS = ("hour", "day", "load_kw", "devices", "market", "grid_import_kwh",
                 "grid_export_kwh", "retail_price", "feed_in_price", "v_min_pu", "v_max_pu",
                 "costs")
DEFAULT_VOLTAGE_BAND = (0.95, 1.05)
DPI = 120

# One colour per device role, one per microgrid: the same thing has the same colour in
# every panel, so the eye can follow a microgrid from the voltage panel to the cost panel.
ROLE_COLORS = {"load": "black", "pv": "#e6a700", "gen": "#d62728", "ess": "#7b3fb5"}
SOC_MARKERS = ("o", "s", "^", "D", "v")
AGENT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def plot_episode(history: History, path: str | os.PathLike[str] | None = None,
                 env: Any = None, reference: History | None = None) -> Figure:
    """Draw one episode as a single multi-panel figure and optionally save it as an image.

    Args:
        history: the per-step infos of one episode, in step order, exactly as returned by
            ``env.step`` (``powergrid.baselines.run_episode`` returns this list). Each item
            maps agent id -> that agent's info dict; the keys read are ``hour``, ``day``,
            ``load_kw``, ``devices`` (device name -> ``{"p_kw", "soc"?, "available_kw"?}``),
            ``market`` (``volume_kwh``, ``clearing_price`` -- ``None`` or NaN when nothing
            cleared),
            ``grid_import_kwh``, ``grid_export_kwh``, ``retail_price``, ``feed_in_price``,
            ``v_min_pu``, ``v_max_pu`` and ``costs["total"]``. A device with ``soc`` is
            drawn as storage, one with ``available_kw`` as PV, any other as a generator.
            Agents whose info has no ``devices`` (the ``DSO`` operator) are skipped.
        path: where to save the figure (format from the suffix, e.g. ``.png``); ``None``
            only returns it.
        env: the env that produced ``history`` (optional). Used for the step length,
            voltage band, SOC limits and protocol name in the title; without it the
            defaults (1 h, 0.95-1.05 pu) are assumed.
        reference: the history of the same day without trading (the same policy with
            ``horizontal_protocol=None``), optional. Its cumulative costs are drawn dashed
            next to this episode's, and the title gives the saving.

    Returns:
        The figure. Left column: one power panel per microgrid, then storage SOC; right
        column: market, grid exchange, voltage, cost per step and cumulative cost. Both
        columns fill the full height (no empty panel): ``n_agents + 6`` panels plus a twin
        price axis on the market panel (``len(fig.axes) == n_agents + 7``), all sharing an
        x axis in hours since 00:00 of the first day.

    Raises:
        ValueError: empty history, an info missing one of the keys above, or a reference
            of another length or other agents.
    """
    if not history:
        raise ValueError("plot_episode: history is empty; pass the list of per-step infos "
                         "of at least one step (see powergrid.baselines.run_episode)")
    # Non-microgrid agents (e.g. the "DSO" operator of a price-signal protocol) own no
    # devices and no load, so they have no panel; everyone else must be complete.
    agents = [a for a, info in history[0].items() if "devices" in info] or list(history[0])
    _check_history(history, agents, "history")
    if reference is not None:
        if len(reference) != len(history):
            raise ValueError(f"plot_episode: reference has {len(reference)} steps, history "
                             f"{len(history)}; pass the same day without trading")
        _check_history(reference, agents, "reference")

    plt = _pyplot()
    cfg = getattr(env, "config", None)
    dt = float(getattr(cfg, "dt_hours", 1.0))
    band = tuple(getattr(cfg, "voltage_band", DEFAULT_VOLTAGE_BAND))
    first = history[0][agents[0]]
    day0 = int(first["day"])
    # Step t covers [x[t], x[t] + dt], in hours since midnight of the first day, so a
    # 24-step day starting at 00:00 reads 0..24 and longer episodes keep counting.
    x = float(first["hour"]) + dt * np.arange(len(history))
    colors = {a: AGENT_COLORS[i % len(AGENT_COLORS)] for i, a in enumerate(agents)}

    # Left column: what each microgrid's devices did (one panel each) and storage SOC;
    # right column: what that meant for the market, the grid, voltages and money. Each
    # column splits the full height among its own panels, so neither has an empty slot.
    n_left, n_right = len(agents) + 1, 5
    fig = plt.figure(figsize=(14, 2.6 * max(n_left, n_right) + 0.9), layout="constrained")
    rows = n_left * n_right
    gs = fig.add_gridspec(rows, 2)
    first_ax = fig.add_subplot(gs[0:n_right, 0])
    left = [first_ax] + [fig.add_subplot(gs[i * n_right:(i + 1) * n_right, 0], sharex=first_ax)
                         for i in range(1, n_left)]
    right = [fig.add_subplot(gs[j * n_left:(j + 1) * n_left, 1], sharex=first_ax)
             for j in range(n_right)]

    for ax, a in zip(left, agents):
        _power_panel(ax, history, a, x, dt)
    _soc_panel(left[-1], history, agents, x, dt, colors, env)
    market_ax, grid_ax, volt_ax, cost_ax, cum_ax = right
    price_ax = _market_panel(market_ax, history, agents[0], x, dt)
    _grid_panel(grid_ax, history, agents, x, dt, colors)
    _voltage_panel(volt_ax, history, agents, x, dt, colors, band)
    _cost_panel(cost_ax, history, agents, x, dt, colors)
    _cumulative_panel(cum_ax, history, reference, agents, x, dt, colors)

    axes = left + right
    for ax in axes + [price_ax]:
        ax.grid(True, alpha=0.3)
    span = x[-1] + dt - x[0]
    step = 1 if span <= 6 else 3 if span <= 36 else 6 if span <= 72 else 24
    for ax in axes:
        ax.set_xlim(x[0], x[-1] + dt)
        ax.set_xticks(np.arange(math.floor(x[0]), x[-1] + dt + 1e-9, step))
        ax.tick_params(labelbottom=True)
    for ax in (left[-1], right[-1]):
        ax.set_xlabel(f"hour (from 00:00 of day {day0})")

    fig.suptitle(_title(history, agents, env, dt, reference), fontsize=13)
    if path is not None:
        fig.savefig(os.fspath(path), dpi=DPI)
    return fig


# --------------------------------------------------------------------------- panels


def _power_panel(ax: Axes, history: History, agent: str, x: np.ndarray, dt: float) -> None:
    """Load against each device's output, so one sees what covers the load hour by hour."""
    load = _series(history, lambda h: h[agent]["load_kw"])
    _steps(ax, x, dt, load, color=ROLE_COLORS["load"], lw=2.2, label="load")
    for name, info in history[0][agent]["devices"].items():
        p = _series(history, lambda h, n=name: h[agent]["devices"][n]["p_kw"])
        if "available_kw" in info:
            avail = _series(history, lambda h, n=name: h[agent]["devices"][n]["available_kw"])
            _steps(ax, x, dt, avail, color=ROLE_COLORS["pv"], ls="--", lw=1.3,
                   label=f"{name} available")
            _steps(ax, x, dt, p, color=ROLE_COLORS["pv"], lw=1.8, label=f"{name} used")
            xs, ys = _step_xy(x, dt, p)
            ax.fill_between(xs, 0, ys, step="post", color=ROLE_COLORS["pv"], alpha=0.2, lw=0)
        elif "soc" in info:
            _steps(ax, x, dt, p, color=ROLE_COLORS["ess"], lw=1.8,
                   label=f"{name} (+ discharge / − charge)")
        else:
            _steps(ax, x, dt, p, color=ROLE_COLORS["gen"], lw=1.8, label=f"{name} power")
    ax.axhline(0, color="grey", lw=0.8)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.3 * (hi - lo))  # headroom so the legend never hides a curve
    ax.set_title(f"{agent}: load and device power")
    ax.set_ylabel("power (kW)")
    ax.legend(loc="upper left", fontsize=8, ncol=2, framealpha=0.85)


def _soc_panel(ax: Axes, history: History, agents: Sequence[str], x: np.ndarray, dt: float,
               colors: Mapping[str, str], env: Any) -> None:
    """SOC is a state at the END of each step, so it is drawn as points at x + dt."""
    limits: set[float] = set()
    drawn = 0
    for a in agents:
        for name, info in history[0][a]["devices"].items():
            if "soc" not in info:
                continue
            soc = 100 * _series(history, lambda h, a=a, n=name: h[a]["devices"][n]["soc"])
            params = _device_params(env, a, name)
            xs = x + dt
            if params is not None:  # the SOC before the first step is only known via env
                xs, soc = np.append(x[0], xs), np.append(100 * params.soc_init, soc)
            # distinct colour, line style and marker, and later lines thinner on top, so
            # batteries that follow the same trajectory stay visible as separate lines
            ax.plot(xs, soc, marker=SOC_MARKERS[drawn % len(SOC_MARKERS)],
                    ms=max(7.0 - 1.5 * drawn, 3.0), mfc="none" if drawn == 0 else colors[a],
                    lw=max(3.2 - 0.9 * drawn, 1.2), color=colors[a],
                    ls=("-", "--", ":", "-.")[drawn % 4], label=f"{a} {name}",
                    zorder=3 + drawn)
            drawn += 1
            if params is not None:
                limits.update((100 * params.soc_min, 100 * params.soc_max))
    for lim in sorted(limits):
        ax.axhline(lim, color="grey", ls=":", lw=1.2)
    if limits:
        ax.plot([], [], color="grey", ls=":", lw=1.2, label="SOC limits")
    if drawn == 0:
        ax.text(0.5, 0.5, "no storage in this episode", transform=ax.transAxes,
                ha="center", va="center", color="grey")
    ax.set_ylim(0, 100)
    ax.set_title("Storage state of charge (end of step)")
    ax.set_ylabel("SOC (%)")
    if drawn:  # lower left: SOC starts mid-range, so that corner is free in any episode
        ax.legend(loc="lower left", fontsize=8, ncol=2, framealpha=0.85)


def _market_panel(ax: Axes, history: History, agent: str, x: np.ndarray, dt: float) -> Axes:
    """Volume (bars, left axis) and price vs the tariff band (right axis), which is what
    decides whether P2P trading beats the grid: any clearing price inside the band, shrunk
    by half the trading fee on each side, helps both sides compared with buying at retail /
    selling at feed-in."""
    volume = _series(history, lambda h: h[agent]["market"]["volume_kwh"])
    price = _series(history, lambda h: h[agent]["market"]["clearing_price"])
    retail = _series(history, lambda h: h[agent]["retail_price"])
    feed_in = _series(history, lambda h: h[agent]["feed_in_price"])
    ax.bar(x + dt / 2, volume, width=0.8 * dt, color="#9ecae1", edgecolor="#3182bd",
           label=f"P2P volume (Σ {volume.sum():,.0f} kWh)")
    ax.set_ylabel("traded energy (kWh)")
    ax.set_title("P2P market: traded volume and clearing price")
    top = volume.max() if np.any(volume > 0) else 1.0
    ax.set_ylim(0, 1.25 * top)

    pax = ax.twinx()
    _steps(pax, x, dt, retail, color="#c0392b", lw=1.5, label="retail tariff")
    _steps(pax, x, dt, feed_in, color="#27ae60", lw=1.5, label="feed-in tariff")
    traded = np.isfinite(price) & (volume > 0)
    pax.plot(x[traded] + dt / 2, price[traded], "D", color="black", ms=5,
             label="clearing price")
    pax.set_ylabel("price ($/kWh)")
    hi = np.nanmax(np.concatenate([retail, price[traded]])) if traded.any() else retail.max()
    pax.set_ylim(0, 1.2 * hi if hi > 0 else 1.0)
    handles = ax.get_legend_handles_labels()
    phandles = pax.get_legend_handles_labels()
    ax.legend(handles[0] + phandles[0], handles[1] + phandles[1], loc="upper left",
              fontsize=8, ncol=2, framealpha=0.85)
    return pax


def _grid_panel(ax: Axes, history: History, agents: Sequence[str], x: np.ndarray, dt: float,
                colors: Mapping[str, str]) -> None:
    """Grouped bars: import above zero, export below, one bar per microgrid per step."""
    width = 0.8 * dt / len(agents)
    for k, a in enumerate(agents):
        imp = _series(history, lambda h, a=a: h[a]["grid_import_kwh"])
        exp = _series(history, lambda h, a=a: h[a]["grid_export_kwh"])
        pos = x + 0.1 * dt + (k + 0.5) * width
        ax.bar(pos, imp, width=width, color=colors[a],
               label=f"{a} (Σ +{imp.sum():,.0f} / −{exp.sum():,.0f} kWh)")
        ax.bar(pos, -exp, width=width, color=colors[a], alpha=0.45, hatch="//",
               edgecolor="white", lw=0)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title("Upstream grid exchange (import + / export −)")
    ax.set_ylabel("energy (kWh)")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)


def _voltage_panel(ax: Axes, history: History, agents: Sequence[str], x: np.ndarray, dt: float,
                   colors: Mapping[str, str], band: Sequence[float]) -> None:
    """Each microgrid's bus voltage range, the shared feeder's (if it spans more than one
    bus voltage), the band, and one marker per violated limit on the steps that violate it."""
    lows, highs = [], []
    for a in agents:
        vmin = _series(history, lambda h, a=a: h[a]["v_min_pu"])
        vmax = _series(history, lambda h, a=a: h[a]["v_max_pu"])
        xs, lo = _step_xy(x, dt, vmin)
        _, hi = _step_xy(x, dt, vmax)
        ax.fill_between(xs, lo, hi, step="post", color=colors[a], alpha=0.25, lw=0)
        ax.step(xs, lo, where="post", color=colors[a], lw=1.2)
        ax.step(xs, hi, where="post", color=colors[a], lw=1.2, label=f"{a} min–max")
        lows.append(np.nanmin(vmin))
        highs.append(np.nanmax(vmax))
    info0 = history[0][agents[0]]
    if "feeder_v_min_pu" in info0:
        fmin = _series(history, lambda h: h[agents[0]]["feeder_v_min_pu"])
        fmax = _series(history, lambda h: h[agents[0]]["feeder_v_max_pu"])
        if np.nanmax(fmax - fmin) > 1e-9:  # a shared feeder, not the tied network's slack
            xs, lo = _step_xy(x, dt, fmin)
            _, hi = _step_xy(x, dt, fmax)
            ax.fill_between(xs, lo, hi, step="post", facecolor="none", edgecolor="0.35",
                            hatch="..", lw=0, label="feeder buses min–max")
            lows.append(np.nanmin(fmin))
            highs.append(np.nanmax(fmax))
    for v in band:
        ax.axhline(v, color="#c0392b", ls="--", lw=1.2)
    ax.plot([], [], color="#c0392b", ls="--", lw=1.2, label=f"limits {band[0]}–{band[1]} pu")
    span = band[1] - band[0]
    bottom = min(band[0], *lows) - 0.15 * span
    top = max(band[1], *highs) + 0.3 * span
    _violation_markers(ax, history, agents, x, dt, band, top - 0.08 * span)
    ax.set_ylim(bottom, top)
    ax.set_title("Bus voltages per microgrid and on the feeder; markers: limits violated")
    ax.set_ylabel("voltage (pu)")
    ax.legend(loc="lower left", fontsize=7, ncol=3, framealpha=0.85)


# marker per violated limit (powergrid.evaluation.feeder.VIOLATION_KINDS)
VIOLATION_MARKERS = {"overvoltage": ("^", "#c0392b", "over-voltage"),
                     "undervoltage": ("v", "#2c3e91", "under-voltage"),
                     "line": ("d", "#8e44ad", "line > 100 %"),
                     "pcc": ("s", "#d35400", "PCC transformer > 100 %"),
                     "pf_failed": ("X", "black", "power flow failed")}


def _violation_markers(ax: Axes, history: History, agents: Sequence[str], x: np.ndarray,
                       dt: float, band: Sequence[float], y: float) -> None:
    """A row of markers at height ``y``: one per step and violated limit, shaded steps."""
    from powergrid.evaluation.feeder import violations

    defaults = {"line_loading_max_pct": 0.0, "pcc_loading_max_pct": 0.0, "pf_converged": True}
    hits = []
    for h in history:
        info0 = h[agents[0]]
        infos = {a: {**defaults, "feeder_v_min_pu": info0["v_min_pu"],
                     "feeder_v_max_pu": info0["v_max_pu"], **h[a]} for a in agents}
        hits.append(violations(infos, band))
    kinds = [k for k in VIOLATION_MARKERS if any(hit[k] for hit in hits)]
    for j, kind in enumerate(kinds):
        marker, color, label = VIOLATION_MARKERS[kind]
        t = np.flatnonzero([hit[kind] for hit in hits])
        offset = (j - (len(kinds) - 1) / 2) * 0.18 * dt
        ax.scatter(x[t] + 0.5 * dt + offset, np.full(len(t), y), marker=marker, s=28,
                   color=color, zorder=5,
                   label=f"{label} ({len(t)} step{'s' if len(t) > 1 else ''})")
    for t in np.flatnonzero([any(hit.values()) for hit in hits]):
        ax.axvspan(x[t], x[t] + dt, color="#c0392b", alpha=0.07, lw=0)


def _cost_panel(ax: Axes, history: History, agents: Sequence[str], x: np.ndarray, dt: float,
                colors: Mapping[str, str]) -> None:
    for a in agents:
        cost = _series(history, lambda h, a=a: h[a]["costs"]["total"])
        _steps(ax, x, dt, cost, color=colors[a], lw=1.8, label=f"{a} (Σ {cost.sum():,.2f} $)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title("Cost per step (= −reward; negative is profit)")
    ax.set_ylabel("cost ($)")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)


def _cumulative_panel(ax: Axes, history: History, reference: History | None,
                      agents: Sequence[str], x: np.ndarray, dt: float,
                      colors: Mapping[str, str]) -> None:
    """Running total cost; with a no-trade reference, the gap between the lines is what
    trading saved (or lost) so far."""
    xs = np.append(x, x[-1] + dt)
    for a in agents:
        cost = np.append(0.0, np.cumsum(_series(history, lambda h, a=a: h[a]["costs"]["total"])))
        label = f"{a} ({cost[-1]:,.0f} \\$)"
        if reference is not None:
            ref = np.append(0.0, np.cumsum(
                _series(reference, lambda h, a=a: h[a]["costs"]["total"])))
            ax.plot(xs, ref, color=colors[a], ls="--", lw=1.4, alpha=0.8,
                    label=f"{a} no trading ({ref[-1]:,.0f} \\$)")
            label = f"{a} ({cost[-1]:,.0f} \\$, saves {ref[-1] - cost[-1]:,.0f} \\$)"
        ax.plot(xs, cost, color=colors[a], lw=2.0, label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title("Cumulative cost" + (" vs the same day without trading (dashed)"
                                      if reference is not None else ""))
    ax.set_ylabel("cost so far ($)")
    ax.legend(loc="upper left", fontsize=8, ncol=2, framealpha=0.85)


# --------------------------------------------------------------------------- helpers


def _check_history(history: History, agents: Sequence[str], what: str) -> None:
    for t, infos in enumerate(history):
        for a in agents:
            if a not in infos:
                raise ValueError(f"plot_episode: step {t} of {what} has no info for agent "
                                 f"{a!r}; got agents {list(infos)}")
            missing = [k for k in REQUIRED_KEYS if k not in infos[a]]
            if missing:
                raise ValueError(f"plot_episode: info of {a!r} at step {t} of {what} lacks "
                                 f"keys {missing}; expected the infos dict returned by "
                                 f"env.step")


def _series(history: History, get: Any) -> np.ndarray:
    """Values of one info field over the episode; ``None`` (e.g. no clearing price) -> NaN."""
    return np.array([math.nan if (v := get(h)) is None else float(v) for h in history])


def _step_xy(x: np.ndarray, dt: float, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant curve over [x_t, x_t + dt]: each value is an average over its step,
    so it must not be drawn as a line interpolating between step starts."""
    return np.append(x, x[-1] + dt), np.append(y, y[-1])


def _steps(ax: Axes, x: np.ndarray, dt: float, y: np.ndarray, **kwargs: Any) -> None:
    xs, ys = _step_xy(x, dt, y)
    ax.step(xs, ys, where="post", **kwargs)


def _device_params(env: Any, agent: str, device: str) -> Any:
    if env is None or not hasattr(env, "devices"):
        return None
    for d in env.devices(agent):
        if d.name == device:
            return getattr(d, "params", None)
    return None


def _title(history: History, agents: Sequence[str], env: Any, dt: float,
           reference: History | None = None) -> str:
    first = history[0][agents[0]]
    traded = sum(h[agents[0]]["market"]["volume_kwh"] for h in history)
    total = sum(h[a]["costs"]["total"] for h in history for a in agents)
    proto = getattr(env, "protocol", "?") if env is not None else None
    where = f"day {first['day']}, {len(history)} steps × {dt:g} h"
    market = "no P2P market" if env is not None and proto is None else \
        f"P2P traded {traded:,.0f} kWh"
    # "\\$": a bare pair of dollar signs would switch matplotlib to math text
    line = f"Episode: {where}  ·  {market}  ·  total cost {total:,.2f} \\$"
    if reference is not None:
        base = sum(h[a]["costs"]["total"] for h in reference for a in agents)
        line += f"  ·  without trading {base:,.2f} \\$ (saves {base - total:,.2f} \\$)"
    if proto not in (None, "?"):
        line += f"\n{type(proto).__name__}"
        rule = getattr(getattr(proto, "clearing_rule", None), "name", None)
        line += f" (clearing: {rule})" if rule else ""
    return line


def _pyplot() -> Any:
    """Import pyplot, choosing Agg only when nothing else would work.

    An explicit choice (``MPLBACKEND``, matplotlibrc, an earlier ``matplotlib.use``, pyplot
    already imported, e.g. in Jupyter) is respected; on a headless Linux box without one,
    Agg is selected so saving never tries to open a window.
    """
    import matplotlib

    explicit = os.environ.get("MPLBACKEND") or "matplotlib.pyplot" in sys.modules
    get_backend_or_none = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    if get_backend_or_none is not None and get_backend_or_none() is not None:
        explicit = True
    has_display = (sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY"))
                   or bool(os.environ.get("WAYLAND_DISPLAY")))
    if not explicit and not has_display:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
