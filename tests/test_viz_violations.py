"""plot_episode marks the steps that violate a network limit (shared-feeder scenarios)."""

from __future__ import annotations

import functools

import matplotlib

matplotlib.use("Agg")

import powergrid  # noqa: E402
from powergrid.baselines import RuleBasedPolicy, run_episode  # noqa: E402
from powergrid.viz import plot_episode  # noqa: E402


@functools.cache
def feeder_day():
    env = powergrid.make("p2p-3mg-v2", split=None)
    # test day 244 under the rule: PCC overload at 00 h, under-voltage at 12 h,
    # over-voltage at 16-17 h (benchmarks/feeder_stress.py)
    _, history = run_episode(env, RuleBasedPolicy(env), seed=0, options={"start_day": 244})
    return env, history


def voltage_legend(fig) -> list[str]:
    ax = next(a for a in fig.axes if a.get_title().startswith("Bus voltages"))
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_episode_plot_marks_each_violated_limit_with_its_step_count():
    env, history = feeder_day()
    labels = voltage_legend(plot_episode(history, env=env))
    assert "over-voltage (2 steps)" in labels
    assert "under-voltage (1 step)" in labels
    assert "PCC transformer > 100 % (1 step)" in labels


def test_episode_plot_draws_the_shared_feeder_voltage_range():
    env, history = feeder_day()
    assert "feeder buses min–max" in voltage_legend(plot_episode(history, env=env))


def test_episode_plot_of_the_tied_network_has_no_feeder_range_and_no_markers():
    env = powergrid.make("p2p-2mg-v1", max_episode_steps=6, split=None)
    _, history = run_episode(env, RuleBasedPolicy(env), seed=0, options={"start_day": 172})
    labels = voltage_legend(plot_episode(history, env=env))
    assert not any("feeder" in t or "step" in t for t in labels)
