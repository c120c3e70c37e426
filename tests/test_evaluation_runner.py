"""The runner and CLI: a policy on a scenario's held-out days, scored against references."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import powergrid
from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.evaluation import Episode, evaluate
from powergrid.evaluation.__main__ import main
from powergrid.scenarios import get

DAY = get("p2p-2mg-v1").test_days[1]  # day 8


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One reference cache for the module: each (scenario, day) optimum is solved once."""
    return tmp_path_factory.mktemp("cache")
needs_oracle = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("powergrid.evaluation.oracle"),
    reason="the oracle (powergrid.evaluation.oracle) is not in this tree")


def rule_factory(env):
    return RuleBasedPolicy(env)


def test_episode_cost_is_the_sum_of_the_env_costs():
    env = powergrid.make("p2p-2mg-v1")
    costs, history = run_episode(env, RuleBasedPolicy(env), seed=0,
                                 options={"start_day": DAY, "split": "test"})
    ep = Episode.from_infos(env.possible_agents, history, env.config.dt_hours)
    assert ep.cost.sum(axis=0).tolist() == pytest.approx([costs[a] for a in env.possible_agents])


def test_no_trade_policy_scores_zero_and_saves_nothing(cache):
    row = evaluate("no-trade", "p2p-2mg-v1", days=[DAY], cache=cache,
                   progress=False).per_episode.iloc[0]
    assert row["cost"] == row["cost_ref"]
    assert row["saving_MG1"] == row["saving_MG2"] == 0.0
    assert row["traded_kwh"] == 0.0
    if math.isfinite(row["cost_opt"]):
        assert row["score"] == 0.0


@needs_oracle
def test_oracle_policy_scores_one_and_rule_based_lies_between(cache):
    opt = evaluate("oracle", "p2p-2mg-v1", days=[DAY], cache=cache, progress=False)
    rule = evaluate("rule", "p2p-2mg-v1", days=[DAY], cache=cache, progress=False)
    assert opt.per_episode["score"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < rule.per_episode["score"].iloc[0] < 1.0
    assert opt.per_episode["gains_vs_opt"].iloc[0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_default_days_are_the_test_split(cache):
    res = evaluate("no-trade", "p2p-2mg-v1", cache=cache, progress=False)
    assert res.per_episode["day"].tolist() == list(get("p2p-2mg-v1").test_days)


def test_a_factory_evaluates_like_the_registered_name(cache):
    by_name = evaluate("rule", "p2p-3mg-v1", days=[DAY], cache=cache, progress=False)
    by_factory = evaluate(rule_factory, "p2p-3mg-v1", days=[DAY], cache=cache,
                          progress=False)
    pd.testing.assert_series_equal(by_name.per_episode["cost"], by_factory.per_episode["cost"])
    assert by_factory.policy == "rule_factory"


def test_cached_references_give_the_same_table(tmp_path):
    first = evaluate("rule", "p2p-2mg-v1", days=[DAY], cache=tmp_path, progress=False)
    assert list((tmp_path / "evaluation").glob("p2p-2mg-v1-*.json"))
    again = evaluate("rule", "p2p-2mg-v1", days=[DAY], cache=tmp_path, progress=False)
    pd.testing.assert_frame_equal(first.per_episode, again.per_episode)


def test_process_parallelism_gives_the_same_table(tmp_path):
    days = list(get("p2p-2mg-v1").test_days[:2])
    one = evaluate("random", "p2p-2mg-v1", days=days, seeds=[0, 1], cache=False,
                   progress=False)
    two = evaluate("random", "p2p-2mg-v1", days=days, seeds=[0, 1], cache=False,
                   workers=2, progress=False)
    pd.testing.assert_frame_equal(one.per_episode, two.per_episode)


def test_scenario_without_an_exact_optimum_reports_nan_score_and_says_why(cache):
    res = evaluate("rule", "price-2mg-v1", days=[DAY], cache=cache, progress=False)
    assert math.isnan(res.per_episode["score"].iloc[0])
    assert res.notes and "optimum" in res.notes[0]


@pytest.mark.parametrize("kwargs, match", [
    ({"policy": "rules"}, r"unknown policy 'rules' \(did you mean 'rule'\?\)"),
    ({"scenario": "p2p-2mg"}, "unknown scenario id 'p2p-2mg'"),
    ({"days": [1]}, "day = 1 is not a 'test' day"),
    ({"days": [400], "split": None}, "outside the year"),
    ({"split": "dev"}, "split = 'dev' is invalid"),
    ({"seeds": [-1]}, "seeds must be ints"),
    ({"workers": 0}, "workers must be an int"),
])
def test_bad_input_raises_naming_it(kwargs, match, cache):
    args = {"policy": "rule", "scenario": "p2p-2mg-v1", "days": [DAY], **kwargs}
    with pytest.raises(ValueError, match=match):
        evaluate(args.pop("policy"), args.pop("scenario"), cache=cache, progress=False,
                 **args)


def test_cli_runs_one_test_day_and_writes_csv_and_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HERON_GRID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "rule"
    assert main(["--scenario", "p2p-2mg-v1", "--policy", "rule", "--split", "test",
                 "--days", str(DAY), "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean score" in printed and "p2p-2mg-v1 / rule / split test" in printed
    table = pd.read_csv(f"{out}.csv", index_col=0)
    assert list(table.index) == ["0", "mean"] and table.loc["0", "day"] == DAY
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["scenario"] == "p2p-2mg-v1" and len(data["episodes"]) == 1


def test_cli_unknown_policy_exits_with_the_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HERON_GRID_CACHE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["--policy", "dqn", "--days", str(DAY), "--quiet"])
    assert exit_info.value.code == 2
    assert "unknown policy 'dqn'" in capsys.readouterr().err
