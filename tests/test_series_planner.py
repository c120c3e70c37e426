"""SeriesPlanner: the per-start-day tables give exactly the series computed per batch."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.series import EpisodeSeries, SeriesPlanner, episode_series


@pytest.mark.parametrize("dt, steps", [(1.0, 24), (0.7, 40), (2.5, 30), (0.25, 96)])
def test_tabulated_series_equal_the_per_batch_computation_bit_for_bit(dt, steps):
    env = MultiAgentMicrogrids({"dt_hours": dt, "max_episode_steps": steps})
    cfg, prof = env.config, env.profiles
    rng = np.random.default_rng(0)
    retail = rng.uniform(0.1, 0.3, prof.pv_per_kw.shape)  # a tariff that changes every day
    args = (cfg, prof, retail, 0.5 * retail, cfg.microgrids)
    days = np.array([0, 1, 200, prof.n_days - 1, 200])  # the year's wrap, a repeated day
    noise = rng.standard_normal((len(days), steps + 1, len(cfg.microgrids)))
    planner = SeriesPlanner(*args)
    assert planner.tabulated
    fast, ref = planner.series(days, noise), SeriesPlanner(*args, tabulate=False).series(days, noise)
    for f in fields(EpisodeSeries):
        np.testing.assert_array_equal(getattr(fast, f.name), getattr(ref, f.name), f.name)
    # and row k of the batch is the scalar env's series for the same draws
    one = episode_series(cfg, prof, retail, 0.5 * retail, cfg.microgrids, int(days[3]),
                         np.random.Generator(np.random.PCG64(1)))
    noise[3] = np.random.Generator(np.random.PCG64(1)).standard_normal(noise[3].shape)
    row = planner.series(days, noise)
    for f in fields(EpisodeSeries):
        np.testing.assert_array_equal(getattr(row, f.name)[3], getattr(one, f.name), f.name)


def test_long_episodes_compute_per_batch_instead_of_tabulating_the_year():
    env = MultiAgentMicrogrids({"max_episode_steps": 24 * 30})
    cfg = env.config
    args = (cfg, env.profiles, env.retail_price, env.feed_in_price, cfg.microgrids)
    assert not SeriesPlanner(*args).tabulated
    assert env.profiles.n_days * (cfg.max_episode_steps + 1) > SeriesPlanner.TABLE_ENTRIES
