"""Evaluation: the perfect-foresight optimum, the score, KPIs and the runner.

``evaluate(policy, scenario, split="test")`` plays a policy on a scenario's held-out days
and scores it: 0 = the no-trade rule-based policy, 1 = the optimum (``optimum``, a MILP
of the env). CLI: ``python -m powergrid.evaluation --scenario p2p-2mg-v1 --policy rule``.
Definitions: docs/evaluation.md.
"""

from powergrid.evaluation.episode import Episode
from powergrid.evaluation.kpis import (
    EpisodeMetrics,
    episode_metrics,
    gains_from_trade,
    gini,
    relative_metrics,
    score,
)
from powergrid.evaluation.policies import BASELINES, Baseline, OraclePolicy, get_baseline
from powergrid.evaluation.runner import EvaluationResult, evaluate, run_policy_episode

__all__ = ["BASELINES", "Baseline", "Episode", "EpisodeMetrics", "EvaluationResult",
           "OraclePolicy", "OracleResult", "episode_metrics", "evaluate", "gains_from_trade",
           "get_baseline", "gini", "optimum", "relative_metrics", "replay_cost",
           "run_policy_episode", "score"]


def __getattr__(name: str):
    # the MILP (scipy) loads only when asked for
    if name in ("optimum", "OracleResult", "replay_cost"):
        from powergrid.evaluation import oracle

        return getattr(oracle, name)
    raise AttributeError(f"module 'powergrid.evaluation' has no attribute {name!r}")
