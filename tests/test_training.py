"""Smoke tests of the training examples (CleanRL PPO, RLlib) and the baseline ordering."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from powergrid.baselines import RandomPolicy, RuleBasedPolicy, evaluate, no_trade_env_factory
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EVAL_DAYS = (0, 40, 80, 121, 161, 202, 242, 283, 323, 364)


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_cleanrl_ppo_smoke(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("tyro")
    ppo = load_example("07_cleanrl_ppo.py")
    args = ppo.Args(total_timesteps=96, num_envs=1, num_steps=48, num_minibatches=2,
                    update_epochs=2, eval_days=(196,), out_dir=str(tmp_path),
                    progress=False)
    results = ppo.main(args)

    rows = list(csv.DictReader(open(tmp_path / "learning_curve.csv")))
    assert len(rows) == 2 and [int(r["global_step"]) for r in rows] == [48, 96]
    for r in rows:
        assert math.isfinite(float(r["loss"]))
        assert math.isfinite(float(r["mean_episode_cost"]))  # 48 steps = 2 whole days
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    assert (tmp_path / "agent.pt").stat().st_size > 0
    assert set(results) == {"random", "no-trade", "rule", "ppo"}
    assert all(math.isfinite(v["cost"]) and v["cost"] > 0 for v in results.values())
    assert results["no-trade"]["score"] == 0.0
    assert (tmp_path / "evaluation.csv").stat().st_size > 0

    # the saved policy evaluates to the same cost from agent.pt alone
    again = ppo.main(ppo.Args(load=str(tmp_path / "agent.pt"), eval_days=(196,),
                              eval_baselines=False, out_dir=str(tmp_path / "eval"),
                              progress=False))
    assert again["ppo"]["cost"] == pytest.approx(results["ppo"]["cost"], abs=1e-9)


def test_shared_policy_adapter_pads_and_tags():
    pytest.importorskip("torch")
    pytest.importorskip("tyro")
    ppo = load_example("07_cleanrl_ppo.py")
    cfg = {"microgrids": [
        {"name": "A", "devices": [{"type": "ess", "name": "ess"}]},
        {"name": "B", "devices": [{"type": "ess", "name": "ess"},
                                  {"type": "solar", "name": "pv"}]},
    ]}
    env = MultiAgentMicrogrids(cfg)
    adapter = ppo.SharedPolicyAdapter(env)
    obs, _ = env.reset(seed=0)
    rows = adapter.rows(obs, update_stats=True)
    assert rows.shape == (2, max(adapter.obs_dims) + 2)
    np.testing.assert_array_equal(rows[:, -2:], np.eye(2))
    acts = adapter.actions(np.full((2, adapter.pad_act_dim), 3.0))
    assert [acts[a].shape[0] for a in env.possible_agents] == adapter.act_dims
    assert all(np.all(acts[a] == 1.0) for a in acts)
    env.step(acts)


@pytest.mark.slow
def test_rllib_one_iteration():
    pytest.importorskip("ray")
    pytest.importorskip("torch")
    rllib = load_example("05_rllib_mappo.py")
    out = rllib.main(["--iterations", "1", "--train-batch-size", "96", "--minibatch-size",
                      "48", "--num-epochs", "1", "--eval-days", "0", "--shared-policy"])
    assert math.isfinite(out["ppo"]) and out["ppo"] > 0


def test_baseline_ordering_on_eval_days():
    """Rule-based with P2P <= rule-based without P2P <= random, on every evaluation day."""
    make = lambda: MultiAgentMicrogrids({})  # noqa: E731
    rnd = evaluate(make, lambda e: RandomPolicy(e, seed=0), EVAL_DAYS, seed=0)
    no_trade = evaluate(no_trade_env_factory(), RuleBasedPolicy, EVAL_DAYS, seed=0)
    rule = evaluate(make, RuleBasedPolicy, EVAL_DAYS, seed=0)
    assert rule["mean_cost"] < no_trade["mean_cost"] < rnd["mean_cost"]
    assert all(r <= n + 1e-6 for r, n in zip(rule["per_day"], no_trade["per_day"]))
    assert all(n < x for n, x in zip(no_trade["per_day"], rnd["per_day"]))
