"""The score and the KPIs of an episode; docs/evaluation.md defines each one in words.

Two kinds: metrics of one episode alone (:func:`episode_metrics`) and metrics relative to
the no-trade reference and the optimum of the same day and seed (:func:`relative_metrics`),
so the references can be computed once and cached as plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from powergrid.evaluation.episode import Episode

WORSE_OFF_TOL = 1e-6  # $: a saving below -this is "worse off" (round-off is not)


def score(c_ref: float, c_policy: float, c_opt: float) -> float:
    """(C_ref - C_policy) / (C_ref - C_opt): 0 = the no-trade reference, 1 = the optimum.

    Negative when the policy costs more than the reference; NaN when the optimum is not
    better than the reference (nothing to normalise by) or unknown (NaN).
    """
    span = c_ref - c_opt
    if not math.isfinite(span) or span <= 1e-9 * max(1.0, abs(c_ref)):
        return math.nan
    return (c_ref - c_policy) / span


def gini(values: Sequence[float]) -> float:
    """Mean absolute difference / (2 x mean absolute value), in [0, 1 - 1/n]; NaN if all 0.

    Equals the usual Gini coefficient for non-negative values; dividing by the mean
    *absolute* value keeps it within the same bounds when some savings are negative.
    """
    x = np.asarray(values, float)
    scale = np.abs(x).mean() if x.size else 0.0
    if scale == 0.0:
        return math.nan
    return float(np.abs(x[:, None] - x[None, :]).mean() / (2.0 * scale))


def gains_from_trade(ep: Episode) -> float:
    """$ the market saved on the episode's own net positions vs settling them with the grid.

    Per microgrid and step: (import x retail - export x feed-in of the whole net position)
    minus what it actually paid for it (grid import - export revenue + P2P payments -
    P2P revenue + fees). Device dispatch is held fixed, so this isolates the market.
    """
    grid_only = (np.maximum(-ep.net_kwh, 0.0) * ep.retail
                 - np.maximum(ep.net_kwh, 0.0) * ep.feed_in)
    return float((grid_only - ep.settlement).sum())


@dataclass(frozen=True)
class EpisodeMetrics:
    """KPIs of one episode alone (a JSON-friendly value: the cache stores these)."""

    cost: float                          # $ summed over microgrids and steps
    cost_per_agent: dict[str, float]     # $
    traded_kwh: float                    # P2P energy bought (= sold) over the episode
    gains_from_trade: float              # $, see gains_from_trade()
    peak_import_kw: float                # max over steps of the network's upstream import
    self_sufficiency: float              # 1 - grid import / load, energy over the episode
    violation_share: float               # share of steps with any network violation
    losses_kwh: float                    # network losses x dt, summed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> EpisodeMetrics:
        return cls(**d)


def episode_metrics(ep: Episode) -> EpisodeMetrics:
    per_agent = ep.cost.sum(axis=0)
    load = float(ep.load_kwh.sum())
    return EpisodeMetrics(
        cost=float(per_agent.sum()),
        cost_per_agent={a: float(c) for a, c in zip(ep.agents, per_agent)},
        traded_kwh=float(ep.bought_kwh.sum()),
        gains_from_trade=gains_from_trade(ep),
        peak_import_kw=float(max(ep.upstream_import_kw.max(initial=0.0), 0.0)),
        self_sufficiency=1.0 - float(ep.grid_import_kwh.sum()) / load if load > 0 else math.nan,
        violation_share=float(ep.violation.mean()) if ep.violation.size else 0.0,
        losses_kwh=float(ep.losses_kw.sum() * ep.dt_hours),
    )


def relative_metrics(policy: EpisodeMetrics, reference: EpisodeMetrics,
                     optimum: EpisodeMetrics | None) -> dict[str, float]:
    """Score, per-agent savings vs the no-trade reference, their spread, gains vs optimum."""
    agents = list(policy.cost_per_agent)
    savings = [reference.cost_per_agent[a] - policy.cost_per_agent[a] for a in agents]
    c_opt = optimum.cost if optimum is not None else math.nan
    g_opt = optimum.gains_from_trade if optimum is not None else math.nan
    out = {"cost_ref": reference.cost, "cost_opt": c_opt,
           "score": score(reference.cost, policy.cost, c_opt),
           "saving": reference.cost - policy.cost}
    out.update({f"saving_{a}": s for a, s in zip(agents, savings)})
    out["share_worse_off"] = float(np.mean([s < -WORSE_OFF_TOL for s in savings]))
    out["gini_savings"] = gini(savings)
    out["gains_from_trade_opt"] = g_opt
    out["gains_vs_opt"] = (policy.gains_from_trade / g_opt
                           if math.isfinite(g_opt) and g_opt > 1e-9 else math.nan)
    return out
