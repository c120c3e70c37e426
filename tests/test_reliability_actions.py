"""Actions that are not real numbers are refused in both envs, naming the agent (issue 13).

numpy would coerce all of these silently: complex -> real part, "0.5" -> 0.5, a datetime
-> its epoch count, True -> 1.0; a Python int beyond float64 raises OverflowError.
"""

from __future__ import annotations

import numpy as np
import pytest

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids

NOT_REAL = {
    "complex": ([1 + 1j, 0, 0], "dtype complex128"),
    "numeric strings": (["0.5", "0", "0"], "dtype <U3"),
    "datetime64": (np.array(["2020-01-01"] * 3, dtype="datetime64[D]"), "dtype datetime64"),
    "timedelta64": (np.array([1, 0, 0], dtype="timedelta64[s]"), "dtype timedelta64"),
    "bool": (np.array([True, False, False]), "dtype bool"),
    "None element": ([None, 0, 0], "not numeric: element None"),
    "int beyond float64": ([10**400, 0, 0], "beyond the float64 range"),
}


@pytest.fixture(scope="module")
def env():
    e = MultiAgentMicrogrids({"max_episode_steps": 1000, "start_day": 5})
    e.reset(seed=0)
    return e


@pytest.fixture(scope="module")
def vec():
    v = VectorMicrogrids(2, {"max_episode_steps": 1000, "start_day": 5})
    v.reset(seed=0)
    return v


@pytest.mark.parametrize("bad, message", NOT_REAL.values(), ids=NOT_REAL.keys())
def test_scalar_env_rejects_non_real_action_naming_agent(env, bad, message):
    acts = {"MG1": bad, "MG2": np.zeros(3)}
    with pytest.raises(ValueError, match=message) as exc:
        env.step(acts)
    assert "'MG1'" in str(exc.value)


@pytest.mark.parametrize("bad, message", NOT_REAL.values(), ids=NOT_REAL.keys())
def test_vector_env_rejects_non_real_action_naming_agent(vec, bad, message):
    batch = [bad, bad] if isinstance(bad, list) else np.stack([bad, bad])
    with pytest.raises(ValueError, match=message) as exc:
        vec.step({"MG1": np.zeros((2, 3)), "MG2": batch})
    assert "'MG2'" in str(exc.value)


def test_rejected_action_leaves_episode_clock_unchanged(env):
    t = env._t
    with pytest.raises(ValueError):
        env.step({"MG1": [1 + 1j, 0, 0], "MG2": np.zeros(3)})
    assert env._t == t


def test_real_numbers_of_any_width_are_accepted():
    e = MultiAgentMicrogrids({"max_episode_steps": 2, "start_day": 5})
    e.reset(seed=0)
    _, _, _, _, infos = e.step({"MG1": np.array([0, 1, -1], np.int8),
                                "MG2": np.array([0.5, 0, 0], np.float16)})
    assert not infos["MG2"]["action_clipped"]
    _, _, _, _, infos = e.step({"MG1": [10**30, 0, 0], "MG2": np.zeros(3, np.uint8)})
    assert infos["MG1"]["action_clipped"]  # huge but representable: clipped, as documented
