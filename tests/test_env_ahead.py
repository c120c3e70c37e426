"""The ahead market in the env (market_timing="ahead"): config, layout, timing, imbalance,
forecasts and distributed mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pettingzoo.test import parallel_api_test, parallel_seed_test

from heron.market import ImbalancePrices
from heron.protocols import ConsensusProtocol
from powergrid.core.ahead import AHEAD_LABELS
from powergrid.data.forecast import sigma
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

AHEAD = {"market_timing": "ahead", "max_episode_steps": 12}


def episode(config: dict, policy, seed: int = 5) -> list[dict]:
    """Infos of one episode under ``policy(env, obs, t) -> actions``."""
    env = MultiAgentMicrogrids(config)
    obs, _ = env.reset(seed=seed)
    out, t = [], 0
    while env.agents:
        obs, _, _, _, infos = env.step(policy(env, obs, t))
        out.append(infos)
        t += 1
    env.close()
    return out


def random_policy(seed: int = 0):
    rng = np.random.default_rng(seed)
    return lambda env, obs, t: {a: rng.uniform(-1, 1, env.action_space(a).shape)
                                for a in env.agents}


def traded(history: list[dict]) -> float:
    return sum(i["MG1"]["market"]["volume_kwh"] for i in history)


# ------------------------------------------------------------------ config

@pytest.mark.parametrize("override, key", [
    ({"market_timing": "day_ahead"}, "market_timing"),
    ({"gate_lead_steps": 12}, "gate_lead_steps"),   # = episode length
    ({"gate_lead_steps": 0}, "gate_lead_steps"),
    ({"gate_lead_steps": -1}, "gate_lead_steps"),
    ({"gate_lead_steps": 1.5}, "gate_lead_steps"),
    ({"bid_curve_points": 0}, "bid_curve_points"),
    ({"bid_curve_points": float("nan")}, "bid_curve_points"),
    ({"imbalance_prices": {"buy_markup": -0.1}}, "imbalance_prices"),
    ({"imbalance_prices": {"buy_markup": float("nan")}}, "imbalance_prices"),
    ({"imbalance_prices": {"markup": 0.1}}, "imbalance_prices"),
    ({"imbalance_prices": 0.5}, "imbalance_prices"),
    ({"horizontal_protocol": None}, "market_timing"),
    ({"horizontal_protocol": ConsensusProtocol()}, "market_timing"),
])
def test_bad_ahead_config_raises_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        MultiAgentMicrogrids({**AHEAD, **override})


@pytest.mark.parametrize("key, value", [("gate_lead_steps", 2), ("bid_curve_points", 2),
                                        ("imbalance_prices", ImbalancePrices(1.0, 0.2))])
def test_ahead_keys_in_the_real_time_market_raise(key, value):
    with pytest.raises(ValueError, match="market_timing"):
        MultiAgentMicrogrids({key: value})


def test_imbalance_prices_accept_a_dict():
    env = MultiAgentMicrogrids({**AHEAD, "imbalance_prices": {"buy_markup": 1.0}})
    assert env.config.imbalance_prices == ImbalancePrices(1.0, 0.5)


# ------------------------------------------------------------------ layout

def test_real_time_is_the_default_and_keeps_the_seed_layout():
    env = MultiAgentMicrogrids()
    assert env.config.market_timing == "real_time"
    assert env.action_labels["MG1"] == ("gen.p", "ess.p", "price")
    assert not set(AHEAD_LABELS) & set(env.obs_labels["MG1"])
    _, infos = env.reset(seed=0)
    assert "imbalance" not in infos["MG1"]["costs"]


def test_ahead_action_holds_quantity_then_one_price_per_curve_point():
    env = MultiAgentMicrogrids({**AHEAD, "bid_curve_points": 3})
    assert env.action_labels["MG2"] == ("ess.p", "pv.curtail", "quantity", "price_1",
                                        "price_2", "price_3")
    assert env.action_space("MG2").shape == (6,)
    labels = env.obs_labels["MG1"]
    assert labels[13:13 + len(AHEAD_LABELS)] == AHEAD_LABELS


def test_ahead_env_passes_the_pettingzoo_parallel_api_test():
    parallel_api_test(MultiAgentMicrogrids({**AHEAD, "bid_curve_points": 2}), num_cycles=30)


def test_ahead_env_is_deterministic_under_seed():
    parallel_seed_test(lambda: MultiAgentMicrogrids(AHEAD))


# ------------------------------------------------------------------ timing and money

def test_nothing_is_delivered_before_the_first_gate_lead():
    hist = episode({**AHEAD, "gate_lead_steps": 3}, random_policy())
    for infos in hist[:3]:
        assert all(i["market"]["bought_kwh"] == i["market"]["sold_kwh"] == 0.0
                   for i in infos.values())
    assert traded(hist[3:]) > 0


def test_orders_are_for_delivery_after_the_lead_and_none_past_the_episode():
    env = MultiAgentMicrogrids({**AHEAD, "gate_lead_steps": 2})
    env.reset(seed=1)
    placed = []
    while env.agents:
        _, _, _, _, infos = env.step({a: np.array([1.0, 1.0, 0.8 if a == "MG1" else -0.8, 0.0])
                                      for a in env.agents})
        placed.append(len(infos["MG1"]["market"]["orders"]))
    assert placed[:10] == [1] * 10 and placed[10:] == [0, 0]


def test_zero_quantity_settles_like_the_no_trade_env():
    def hold(env, obs, t):  # devices act, the market components commit nothing
        return {a: np.array([0.5, -0.3, 0.0, 0.7]) for a in env.agents}

    ahead = episode(AHEAD, hold)
    none = episode({"max_episode_steps": 12, "horizontal_protocol": None},
                   lambda env, obs, t: {a: np.array([0.5, -0.3, 0.7]) for a in env.agents})
    for a_inf, n_inf in zip(ahead, none):
        for a in ("MG1", "MG2"):
            assert a_inf[a]["costs"]["imbalance"] == 0.0
            assert a_inf[a]["costs"]["total"] == pytest.approx(n_inf[a]["costs"]["total"],
                                                               abs=1e-12)


def test_imbalance_cost_is_the_shortfall_and_excess_at_the_imbalance_prices():
    prices = ImbalancePrices(0.8, 0.3)
    hist = episode({**AHEAD, "imbalance_prices": prices}, random_policy(3))
    seen = 0.0
    for infos in hist:
        for i in infos.values():
            m = i["market"]
            expected = (m["shortfall_kwh"] * i["retail_price"] * 1.8
                        - m["excess_kwh"] * i["feed_in_price"] * 0.7)
            assert i["costs"]["imbalance"] == pytest.approx(expected, abs=1e-12)
            seen += m["shortfall_kwh"] + m["excess_kwh"]
    assert seen > 0


def test_energy_balance_at_delivery():
    # actual net = committed P2P position + everything exchanged with the utility
    for infos in episode(AHEAD, random_policy(4)):
        for i in infos.values():
            m = i["market"]
            position = m["sold_kwh"] - m["bought_kwh"]
            assert i["net_kw"] == pytest.approx(
                position + i["grid_export_kwh"] - i["grid_import_kwh"], abs=1e-9)


def test_committed_position_is_observed_before_its_delivery():
    env = MultiAgentMicrogrids(AHEAD)
    obs, _ = env.reset(seed=2)
    k = env.obs_labels["MG1"].index("committed_now")
    rng = np.random.default_rng(1)
    checked = 0
    while env.agents:
        due = {a: float(obs[a][k]) for a in env.agents}
        obs, _, _, _, infos = env.step({a: rng.uniform(-1, 1, 4) for a in env.agents})
        for a, i in infos.items():
            m = i["market"]
            position = (m["sold_kwh"] - m["bought_kwh"]) / env.config.microgrids[
                env.possible_agents.index(a)].peak_load_kw
            assert due[a] == pytest.approx(position, abs=1e-6)
            checked += position != 0
    assert checked > 0


# ------------------------------------------------------------------ forecasts

def test_forecasts_have_the_calibrated_error_at_the_lead_and_the_actual_is_revealed():
    env = MultiAgentMicrogrids({"market_timing": "ahead", "gate_lead_steps": 3,
                                "max_episode_steps": 24})
    labels = env.obs_labels["MG1"]
    rel = []
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        fc = {}
        t = 0
        while env.agents:
            fc[t + 3] = obs["MG1"][labels.index("load_ahead")]
            obs, _, _, _, infos = env.step({a: np.zeros(4) for a in env.agents})
            actual = infos["MG1"]["load_kw"] / 1000.0
            assert obs["MG1"][labels.index("load_last")] == pytest.approx(actual, rel=1e-6)
            if t in fc:
                rel.append(fc[t] / actual - 1.0)
            t += 1
    assert np.std(rel) == pytest.approx(float(sigma("load_commercial", 3)), rel=0.15)
    assert abs(np.mean(rel)) < 0.03


# ------------------------------------------------------------------ distributed mode

def test_lossless_distributed_equals_centralized_in_the_ahead_market():
    central = episode({**AHEAD, "gate_lead_steps": 2}, random_policy(6))
    dist = episode({**AHEAD, "gate_lead_steps": 2, "centralized": False}, random_policy(6))
    assert traded(central) > 0
    for c, d in zip(central, dist):
        for a in ("MG1", "MG2"):
            assert d[a]["costs"] == c[a]["costs"]
            assert d[a]["market"]["trades"] == c[a]["market"]["trades"]


@pytest.mark.parametrize("lead, latency, trades", [(1, 1, False), (2, 1, True), (2, 2, False),
                                                   (3, 2, True), (3, 5, False)])
def test_orders_trade_iff_latency_is_below_the_gate_lead(lead, latency, trades):
    hist = episode({**AHEAD, "gate_lead_steps": lead, "centralized": False,
                    "latency_steps": latency}, random_policy(7))
    assert (traded(hist) > 0) == trades
    if not trades:
        assert sum(i["MG1"]["comm"]["stale"] for i in hist) > 0


def test_dropped_orders_do_not_trade():
    hist = episode({**AHEAD, "centralized": False, "drop_prob": 1.0}, random_policy(8))
    assert traded(hist) == 0
    assert sum(i["MG1"]["comm"]["dropped"] for i in hist) > 0


# ------------------------------------------------------------------ the rule-based baseline

def test_rule_based_baseline_commits_its_forecast_net_position():
    from powergrid.baselines import RuleBasedPolicy, run_episode

    env = MultiAgentMicrogrids(AHEAD)
    _, hist = run_episode(env, RuleBasedPolicy(env), seed=0, options={"start_day": 100})
    committed = deviation = 0.0
    for infos in hist:
        for i in infos.values():
            m = i["market"]
            committed += abs(m["sold_kwh"] - m["bought_kwh"])
            deviation += m["shortfall_kwh"] + m["excess_kwh"]
    assert committed > 0
    assert deviation < 0.2 * committed  # it follows its forecast, errors and all


# ------------------------------------------------------------------ the scenario

def test_ahead_scenario_is_market_4mg_traded_ahead_and_the_leaderboard_stays_real_time():
    import powergrid

    ahead, real = (powergrid.scenarios[s].config() for s in ("market-4mg-ahead-v1",
                                                             "market-4mg-v1"))
    assert ahead.pop("market_timing") == "ahead" and ahead.pop("gate_lead_steps") == 1
    assert repr(ahead) == repr(real)
    assert "market_timing" not in powergrid.scenarios["p2p-2mg-v1"].config()
    env = powergrid.make("market-4mg-ahead-v1")
    assert env.action_labels["MG3"] == ("pv.curtail", "quantity", "price")


def test_the_no_trade_baseline_of_an_ahead_scenario_is_the_real_time_grid_only_env():
    import powergrid
    from powergrid.baselines import no_trade_env_factory

    env = no_trade_env_factory(powergrid.scenarios["market-4mg-ahead-v1"].config())()
    assert env.protocol is None and env.config.market_timing == "real_time"


def test_batched_forecasts_equal_the_reference_forecast_drawn_agent_by_agent():
    from powergrid.core.ahead import AheadParams, forecast_normals, forecasts
    from powergrid.data.forecast import forecast
    from powergrid.envs.config import EnvConfig

    p = AheadParams.build(EnvConfig.from_dict({**AHEAD, "gate_lead_steps": 2}))
    data = np.random.default_rng(0)
    load, pv = data.uniform(100, 900, (13, 2)), data.uniform(0, 1, 13)
    got = forecasts(p, load[None], pv[None], forecast_normals(p, 12, np.random.default_rng(4))[None])
    rng = np.random.default_rng(4)
    want_load = np.stack([forecast(load[:, i], 2, rng, kind=k)
                          for i, k in enumerate(p.load_kinds)], axis=1)
    np.testing.assert_allclose(got[0][0], want_load, rtol=1e-15)
    np.testing.assert_allclose(got[1][0], forecast(pv, 2, rng, kind="pv"), rtol=1e-15)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 10_000))
def test_every_delivered_kwh_was_sold_and_every_dollar_paid_was_received(lead, points, seed):
    from powergrid.envs.vector import VectorMicrogrids

    vec = VectorMicrogrids(3, {**AHEAD, "gate_lead_steps": lead, "bid_curve_points": points,
                               "trading_fee": 0.01})
    vec.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(14):  # across an autoreset
        _, _, _, _, infos = vec.step({a: rng.uniform(-1, 1, (3, *vec.single_action_space(a).shape))
                                      for a in vec.possible_agents})
        mg = [infos[a] for a in vec.microgrid_agents]
        np.testing.assert_allclose(sum(i["sold_kwh"] for i in mg), sum(i["bought_kwh"] for i in mg),
                                   atol=1e-9)
        paid = sum(i["costs"]["p2p_payment"] for i in mg)
        received = sum(i["costs"]["p2p_revenue"] for i in mg)
        np.testing.assert_allclose(paid, received, atol=1e-9)  # the fee is charged on top
        fees = sum(i["costs"]["fees"] for i in mg)
        np.testing.assert_allclose(fees, 0.01 * sum(i["bought_kwh"] for i in mg), atol=1e-9)
