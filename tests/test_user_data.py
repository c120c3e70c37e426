"""User-supplied load, PV and price series (config key ``data``): read, validated, used."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from powergrid.envs import MultiAgentMicrogrids

DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "data.md"
HOURS = 72


def series(**overrides):
    hour = np.arange(HOURS) % 24
    cols = {"MG1": np.full(HOURS, 500.0) + hour, "MG2": np.full(HOURS, 300.0),
            "pv_per_kw": np.where((hour >= 8) & (hour < 16), 0.6, 0.0),
            "retail_price": np.where(hour >= 17, 0.30, 0.10), "feed_in_price": np.full(HOURS, 0.03)}
    cols.update(overrides)
    return {k: v for k, v in cols.items() if v is not None}


def env_with(data, **config):
    return MultiAgentMicrogrids({"data": data, "max_episode_steps": 24, **config})


def test_user_series_drive_loads_pv_and_prices():
    env = env_with(series())
    env.reset(seed=0, options={"start_day": 1})
    for t in range(24):
        _, _, _, _, infos = env.step({a: np.zeros(3, np.float32) for a in env.agents})
        info = infos["MG1"]
        assert info["retail_price"] == (0.30 if t >= 17 else 0.10)
        assert infos["MG2"]["devices"]["pv"]["available_kw"] == pytest.approx(
            1500 * (0.6 if 8 <= t < 16 else 0.0))
        # realised load = the user's kW x (1 + noise), noise std 2 %
        assert info["load_kw"] == pytest.approx(500.0 + t, rel=0.1)


def test_episodes_start_only_where_the_whole_episode_fits():
    env = env_with(series())
    assert env.profiles.n_start_days == 2  # 72 h; a 24-step episode reads 25 h
    days = {env.reset(seed=s)[1]["MG1"]["start_day"] for s in range(40)}
    assert days == {0, 1}
    with pytest.raises(ValueError, match="start_day"):
        env.reset(options={"start_day": 2})


def test_missing_columns_come_from_the_shipped_profiles():
    from powergrid.data import load_profiles

    env = env_with({"MG1": np.full(48, 500.0)})
    np.testing.assert_array_equal(env.profiles.pv_per_kw, load_profiles().pv_per_kw[:2])


def test_a_csv_file_and_a_dataframe_give_the_same_episode(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(series())
    df.insert(0, "time", pd.date_range("2025-01-01", periods=HOURS, freq="h"))
    df.to_csv(tmp_path / "site.csv", index=False)
    a, b = env_with(df), env_with(str(tmp_path / "site.csv"))
    oa, ob = a.reset(seed=3)[0], b.reset(seed=3)[0]
    for agent in oa:
        np.testing.assert_array_equal(oa[agent], ob[agent])


@pytest.mark.parametrize("data, message", [
    (series(MG3=np.zeros(HOURS)), r"unknown column\(s\) \['MG3'\]"),
    ({"MG1": np.full(20, 500.0)}, r"covers 20 h, but one episode of 24 steps of 1 h needs 25 h"),
    (series(MG1=np.r_[np.full(7, 500.0), np.nan, np.full(HOURS - 8, 500.0)]),
     r"column 'MG1' has a non-finite value nan in row 7"),
    (series(pv_per_kw=np.r_[np.zeros(12), 3.0, np.zeros(HOURS - 13)]),
     r"column 'pv_per_kw' = 3 in row 12 is outside \[0, 2\]"),
    (series(MG2=np.full(HOURS, 9000.0)), r"column 'MG2' = 9000 in row 0 .*peak_load_kw 900"),
    (series(MG2=np.zeros(HOURS - 1)), r"columns differ in length"),
    (series(feed_in_price=np.full(HOURS, 0.2)), r"feed_in_price 0.2 exceeds retail_price 0.1 "
                                                r"in row 0"),
    (series(MG1=np.array(["a"] * HOURS)), r"column 'MG1' must hold numbers"),
    (series(MG1=np.zeros((HOURS, 2))), r"column 'MG1' must be 1-D"),
    ([1, 2, 3], r"expected a pandas DataFrame, a dict of 1-D arrays or a CSV path"),
    ("/nonexistent/site.csv", r"does not exist"),
])
def test_bad_data_is_refused_naming_the_problem(data, message):
    with pytest.raises(ValueError, match=message):
        env_with(data)


def test_prices_given_twice_are_refused():
    with pytest.raises(ValueError, match=r"\['retail_price'\] given twice"):
        env_with(series(), retail_price=0.2)


def test_the_docs_page_example_runs():
    pytest.importorskip("pandas")
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS_PAGE.read_text(), flags=re.S | re.M)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS_PAGE), "exec"), namespace)
    assert namespace["env"].profiles.n_start_days == 2
    assert len(namespace["history"]) == 24
