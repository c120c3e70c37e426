"""Training examples (CleanRL PPO/MAPPO on the batched env, RLlib) and the learner's rows."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import powergrid
from powergrid.baselines import (
    RandomPolicy,
    RuleBasedPolicy,
    evaluate,
    no_trade_env_factory,
    run_episode,
)
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.policies import load_policy
from powergrid.policies.features import RowLayout, agent_rows, central_state, split_rows

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EVAL_DAYS = (0, 40, 80, 121, 161, 202, 242, 283, 323, 364)


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mappo", [False, True], ids=["ppo", "mappo"])
def test_cleanrl_example_trains_on_the_batched_env_and_writes_curve_and_checkpoint(
        tmp_path, monkeypatch, mappo):
    pytest.importorskip("torch")
    pytest.importorskip("tyro")
    monkeypatch.setenv("HERON_GRID_CACHE", str(tmp_path / "cache"))
    ppo = load_example("07_cleanrl_ppo.py")
    args = ppo.Args(total_timesteps=2 * 24 * 4, num_envs=4, num_minibatches=2,
                    update_epochs=1, eval_every=1, test_days=(0, 8), mappo=mappo,
                    out_dir=str(tmp_path / "run"))
    summary = ppo.main(args)

    rows = list(csv.DictReader(open(tmp_path / "run" / "learning_curve.csv")))
    assert [int(r["env_steps"]) for r in rows] == [0, 96, 192]
    assert all(math.isfinite(float(r["test_score"])) for r in rows)
    assert math.isfinite(float(rows[-1]["train_team_cost"]))
    assert summary["rule_score"] > 0.5  # the rule is well above no-trade on these days
    policy = load_policy(tmp_path / "run" / "agent.pt")
    env = powergrid.make("p2p-2mg-v1")
    obs, _ = env.reset(seed=0)
    actions = policy(env)(obs)
    assert {a: x.shape for a, x in actions.items()} == {"MG1": (3,), "MG2": (3,)}
    assert all(np.all(np.abs(x) <= 1.0) for x in actions.values())


def test_agent_rows_are_env_major_with_one_hot_id_and_rule_action():
    env = powergrid.make("p2p-2mg-v1")
    layout = RowLayout.of(env, rule_features=True)
    obs = {"MG1": np.full((2, 15), 1.0), "MG2": np.full((2, 15), 2.0)}
    rule = np.arange(12, dtype=np.float32).reshape(4, 3)
    rows = agent_rows(layout, obs, rule)
    assert rows.shape == (4, 15 + 2 + 3)
    np.testing.assert_array_equal(rows[:, 0], [1, 2, 1, 2])  # env 0: MG1, MG2; env 1: ...
    np.testing.assert_array_equal(rows[:, 15:17], np.tile(np.eye(2), (2, 1)))
    np.testing.assert_array_equal(rows[:, 17:], rule)
    back = split_rows(layout, rule)
    np.testing.assert_array_equal(back["MG2"], rule[[1, 3]])


def test_central_state_gives_every_agent_of_an_env_the_joint_rows_and_its_id():
    layout = RowLayout(("A", "B"), obs_dim=1, act_dim=1, rule_features=False)
    rows = np.array([[1.0], [2.0], [3.0], [4.0]])  # env 0: A=1, B=2; env 1: A=3, B=4
    state = central_state(layout, rows)
    np.testing.assert_array_equal(state, [[1, 2, 1, 0], [1, 2, 0, 1], [3, 4, 1, 0],
                                          [3, 4, 0, 1]])


def test_shared_layout_refuses_agents_with_different_sizes():
    cfg = {"microgrids": [
        {"name": "A", "devices": [{"type": "ess", "name": "ess"}]},
        {"name": "B", "devices": [{"type": "ess", "name": "ess"},
                                  {"type": "solar", "name": "pv"}]},
    ]}
    with pytest.raises(ValueError, match="same observation and action sizes"):
        RowLayout.of(MultiAgentMicrogrids(cfg), rule_features=False)


@pytest.mark.slow
def test_rllib_mappo_trains_one_iteration_with_two_env_runners_and_exports_the_actor(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("torch")
    rllib = load_example("05_rllib_mappo.py")
    out = rllib.main(["--iterations", "1", "--num-env-runners", "2", "--train-batch-size",
                      "96", "--minibatch-size", "48", "--num-epochs", "1", "--test-days",
                      "0", "8", "--out-dir", str(tmp_path)])
    assert out["iterations"] == 1 and out["env_steps"] >= 96
    assert math.isfinite(out["test_score"])
    env = powergrid.make("p2p-2mg-v1")
    obs, _ = env.reset(seed=0, options={"split": "test"})
    actions = load_policy(tmp_path / "agent.pt")(env)(obs)
    assert all(env.action_space(a).contains(actions[a]) for a in env.possible_agents)


@pytest.mark.slow
def test_rllib_rows_give_the_critic_the_joint_state_and_a_zero_residual_plays_the_rule():
    pytest.importorskip("ray")
    rllib = load_example("05_rllib_mappo.py")
    env = rllib.TeamRows(powergrid.make("p2p-2mg-v1", share_reward=True))
    obs, _ = env.reset(seed=0, options={"start_day": 5})
    d = obs["MG1"]["obs"].size
    joint = np.concatenate([obs["MG1"]["obs"], obs["MG2"]["obs"]])
    np.testing.assert_array_equal(obs["MG1"]["state"], np.concatenate([joint, [1, 0]]))
    np.testing.assert_array_equal(obs["MG2"]["state"], np.concatenate([joint, [0, 1]]))
    assert np.all(np.abs(obs["MG1"]["obs"][d - 3:]) <= 1.0)  # rows scaled to the bounds
    total = 0.0
    while env.agents:
        _, rewards, _, _, _ = env.step({a: np.zeros(3, np.float32) for a in env.agents})
        total += rewards["MG1"]
    rule_env = powergrid.make("p2p-2mg-v1")
    costs, _ = run_episode(rule_env, RuleBasedPolicy(rule_env), seed=0,
                           options={"start_day": 5})
    assert -total == pytest.approx(sum(costs.values()))


def test_baseline_ordering_on_eval_days():
    """Rule-based with P2P <= rule-based without P2P <= random, on every evaluation day."""
    make = lambda: MultiAgentMicrogrids({})  # noqa: E731
    rnd = evaluate(make, lambda e: RandomPolicy(e, seed=0), EVAL_DAYS, seed=0)
    no_trade = evaluate(no_trade_env_factory(), RuleBasedPolicy, EVAL_DAYS, seed=0)
    rule = evaluate(make, RuleBasedPolicy, EVAL_DAYS, seed=0)
    assert rule["mean_cost"] < no_trade["mean_cost"] < rnd["mean_cost"]
    assert all(r <= n + 1e-6 for r, n in zip(rule["per_day"], no_trade["per_day"]))
    assert all(n < x for n, x in zip(no_trade["per_day"], rnd["per_day"]))
