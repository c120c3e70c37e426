"""Trained policies shipped with the package (``load_policy("ppo")``), and their row layout."""

from powergrid.policies.learned import SHIPPED, LearnedPolicy, load_policy

__all__ = ["SHIPPED", "LearnedPolicy", "load_policy"]
