"""Train/test split of the days: held-out days are never drawn in train mode."""

from __future__ import annotations

import numpy as np
import pytest

from powergrid.envs.days import DaySplit, held_out_days
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids


def test_held_out_days_are_one_per_week_rotating_weekday():
    days = held_out_days(365)
    assert len(days) == 52
    weeks = [d // 7 for d in days]
    assert weeks == list(range(52))
    assert {d % 7 for d in days} == set(range(7))  # every weekday held out


def test_train_mode_never_draws_a_test_day_in_2000_resets():
    env = MultiAgentMicrogrids({"max_episode_steps": 1, "split": "train"})
    test = set(held_out_days())
    drawn = {env.reset(seed=s)[1]["MG1"]["start_day"] for s in range(2000)}
    assert not drawn & test
    assert len(drawn) > 250  # and it does spread over the train days


def test_test_mode_draws_only_test_days():
    env = MultiAgentMicrogrids({"max_episode_steps": 1})
    drawn = {env.reset(seed=s, options={"split": "test"})[1]["MG1"]["start_day"]
             for s in range(300)}
    assert drawn <= set(held_out_days()) and len(drawn) > 40


def test_multi_day_train_episodes_never_touch_a_test_day():
    split = DaySplit(365, episode_days=2)
    test = set(split.test_days)
    assert all(d not in test and (d + 1) % 365 not in test for d in split.train_days)


def test_no_split_keeps_the_original_start_days():
    env = MultiAgentMicrogrids({"max_episode_steps": 1})
    days = [env.reset(seed=s)[1]["MG1"]["start_day"] for s in range(5)]
    assert days == [int(np.random.default_rng(s).integers(0, 365)) for s in range(5)]


@pytest.mark.parametrize("options, match", [
    ({"start_day": 0, "split": "train"}, "'start_day' = 0 is not a 'train' day"),
    ({"start_day": 1, "split": "test"}, "'start_day' = 1 is not a 'test' day"),
    ({"start_day": 365}, r"'start_day' = 365 is invalid: expected None or an int in \[0, 364\]"),
    ({"start_day": -1}, r"'start_day' = -1 is invalid: expected None or an int in \[0, 364\]"),
    ({"start_day": 2.5}, "'start_day' = 2.5 is invalid: expected None or an int"),
    ({"split": "validation"}, "reset option 'split'"),
])
def test_bad_start_day_or_split_raises_naming_it(options, match):
    with pytest.raises(ValueError, match=match):
        MultiAgentMicrogrids().reset(seed=0, options=options)
    with pytest.raises(ValueError, match=match):
        VectorMicrogrids(2).reset(seed=0, options=options)


def test_bad_split_config_key_raises():
    with pytest.raises(ValueError, match="config key 'split'"):
        MultiAgentMicrogrids({"split": "Test"})


def test_vector_autoreset_keeps_the_reset_split():
    vec = VectorMicrogrids(8, {"max_episode_steps": 1})
    vec.reset(seed=0, options={"split": "test"})
    acts = {a: np.zeros((8, *vec.single_action_space(a).shape)) for a in vec.possible_agents}
    vec.step(acts)
    _, _, _, _, infos = vec.step(acts)  # the autoreset step
    assert set(infos["MG1"]["start_day"].tolist()) <= set(held_out_days())
