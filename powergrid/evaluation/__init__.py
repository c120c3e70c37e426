"""Evaluation: the perfect-foresight optimum of an episode (more: score, KPIs, runner)."""

from powergrid.evaluation.oracle import OracleResult, optimum

__all__ = ["OracleResult", "optimum"]
