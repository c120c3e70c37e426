"""The oracle: a perfect-foresight MILP whose actions replay in the env to its reported cost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heron.protocols import ConsensusProtocol
from powergrid import scenarios
from powergrid.baselines import RandomPolicy, RuleBasedPolicy, run_episode
from powergrid.devices import DeviceParams, ESSParams, GeneratorParams, PowerDevice
from powergrid.envs.config import MicrogridSpec, default_microgrids
from powergrid.envs.coordination import tariff_price_signal
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.evaluation import OracleResult, optimum

BASE = {"max_episode_steps": 24}
TEST_DAY = scenarios["p2p-3mg-v1"].test_days[10]


def replay(config: dict, result: OracleResult, options: dict | None = None
           ) -> dict[str, float]:
    """Cost per agent of stepping ``result.actions`` in a fresh env."""
    env = MultiAgentMicrogrids(config)
    env.reset(seed=result.seed, options={"start_day": result.day, **(options or {})})
    cost = dict.fromkeys(env.possible_agents, 0.0)
    for step in result.actions:
        _, rewards, _, _, _ = env.step(step)
        for a, r in rewards.items():
            cost[a] -= r
    assert not env.agents, "the actions must cover the whole episode"
    return cost


def assert_replays(config: dict, result: OracleResult, options: dict | None = None) -> None:
    cost = replay(config, result, options)
    assert sum(cost.values()) == pytest.approx(result.cost, abs=1e-6)
    for a, c in cost.items():
        assert c == pytest.approx(result.cost_per_agent[a], abs=1e-6)


@pytest.mark.parametrize("day", [0, 121, 283])
@pytest.mark.parametrize("trading", [True, False])
def test_actions_replay_to_the_reported_cost_on_the_default_env(day, trading):
    result = optimum(BASE, day, seed=day, trading=trading)
    config = BASE if trading else {**BASE, "horizontal_protocol": None}
    assert_replays(config, result)


@pytest.mark.parametrize("trading", [True, False])
def test_actions_replay_on_a_three_microgrid_scenario_with_terminal_price(trading):
    sid = "p2p-3mg-v1"
    config = scenarios[sid].config()
    assert config["storage_terminal_price"] > 0
    result = optimum(sid, TEST_DAY, seed=2, trading=trading, split="test")
    if not trading:
        config = {**config, "horizontal_protocol": None}
    assert_replays(config, result, {"split": "test"})


@pytest.mark.parametrize("clearing", ["uniform", "pay_as_bid", "cda"])
def test_actions_replay_under_every_clearing_rule_with_a_fee(clearing):
    config = {**BASE, "microgrids": scenarios.p2p_microgrids(3), "clearing": clearing,
              "trading_fee": 0.01}
    result = optimum(config, 200, seed=1)
    assert result.traded_kwh > 0
    assert_replays(config, result)


def test_fee_above_the_spread_stops_trading_in_exactly_those_hours():
    config = {**BASE, "trading_fee": 0.1}  # night spread 0.06 < fee < day spread 0.12
    result = optimum(config, 200, seed=0)
    assert_replays(config, result)
    env = MultiAgentMicrogrids(config)
    env.reset(seed=0, options={"start_day": 200})
    for step in result.actions:
        _, _, _, _, infos = env.step(step)
        info = infos["MG1"]
        if info["retail_price"] - info["feed_in_price"] < 0.1:
            assert info["market"]["volume_kwh"] == 0.0
    assert result.traded_kwh > 0


def test_mcafee_with_two_microgrids_is_the_no_trade_optimum():
    # one bid and one ask form the marginal pair, which trade reduction always removes
    mcafee = optimum({**BASE, "clearing": "mcafee"}, 40, seed=0)
    assert mcafee.traded_kwh == 0
    assert mcafee.cost == pytest.approx(optimum(BASE, 40, seed=0, trading=False).cost,
                                        abs=1e-3)


def test_fixed_price_signal_replaces_the_tariff_and_replays():
    config = {**BASE, "vertical_protocol": tariff_price_signal(
        [0.25] * 24, mode="fixed", spread=0.5)}
    result = optimum(config, 200, seed=0)
    assert result.cost != pytest.approx(optimum(BASE, 200, seed=0).cost, abs=1.0)
    assert_replays(config, result)


@pytest.mark.parametrize("day", [0, 202])
def test_optimum_is_no_worse_than_the_baselines_on_the_same_day(day):
    best = optimum(BASE, day, seed=day).cost
    options = {"start_day": day}
    for make_env, make_policy in [
        (lambda: MultiAgentMicrogrids(BASE), RuleBasedPolicy),
        (lambda: MultiAgentMicrogrids({**BASE, "horizontal_protocol": None}), RuleBasedPolicy),
        (lambda: MultiAgentMicrogrids(BASE), lambda e: RandomPolicy(e, seed=day)),
    ]:
        env = make_env()
        cost, _ = run_episode(env, make_policy(env), seed=day, options=options)
        assert best <= sum(cost.values()) + 1e-9


def test_no_trade_optimum_is_at_least_the_trading_optimum():
    for day in (80, 323):
        assert optimum(BASE, day, seed=0, trading=False).cost >= \
            optimum(BASE, day, seed=0).cost - 1e-6


def test_solver_bound_is_below_the_cost_and_the_gap_is_small():
    result = optimum(BASE, 161, seed=0)
    assert result.mip_objective <= result.cost + 1e-9
    assert result.gap == pytest.approx(result.cost - result.mip_objective)
    assert result.rel_gap <= 1e-5


def test_replay_incurs_no_safety_penalty():
    assert optimum(BASE, 172, seed=0).safety_penalty == 0.0


def stored_kwh_drop(config: dict, day: int) -> float:
    """kWh the optimum's batteries hold less at the end of the day than at its start."""
    result = optimum(config, day, seed=0)
    env = MultiAgentMicrogrids(config)
    env.reset(seed=0, options={"start_day": day})
    start = sum(d.soc * d.params.capacity_kwh for a in env.possible_agents
                for d in env.devices(a) if hasattr(d, "soc"))
    for step in result.actions:
        env.step(step)
    end = sum(d.soc * d.params.capacity_kwh for a in env.possible_agents
              for d in env.devices(a) if hasattr(d, "soc"))
    return start - end


def test_terminal_price_removes_the_end_of_day_drain():
    assert stored_kwh_drop(BASE, 200) > 100.0  # free stored energy: the optimum drains it
    # worth more than the evening peak tariff: the optimum keeps (at least) what it started with
    assert stored_kwh_drop({**BASE, "storage_terminal_price": 0.35}, 200) <= 1e-6


def test_terminal_price_term_is_in_the_reported_costs():
    result = optimum({**BASE, "storage_terminal_price": 0.1}, 200, seed=0)
    assert "storage_terminal" in result.cost_terms


@dataclasses.dataclass(frozen=True)
class HeaterParams(DeviceParams):
    name: str = "heater"
    bus: str = "675"

    def build(self) -> PowerDevice:
        return Heater(self)


class Heater(PowerDevice):
    action_labels = ("p",)
    obs_labels = ("p",)

    def __init__(self, params: HeaterParams) -> None:
        super().__init__(params.name, params.bus)

    def reset(self, rng) -> None:
        self.p_kw = self.cost = 0.0

    def step(self, action, ctx) -> float:
        self.p_kw = -50.0 * (float(action[0]) + 1.0)
        return self.p_kw

    def observe(self) -> tuple[float, ...]:
        return (self.p_kw,)


def test_custom_device_raises_not_implemented_naming_it():
    mg1, mg2 = default_microgrids()
    config = {**BASE, "microgrids": (MicrogridSpec("MG1", mg1.devices + (HeaterParams(),)),
                                     mg2)}
    with pytest.raises(NotImplementedError, match="heater.*Heater"):
        optimum(config, 0)


@pytest.mark.parametrize("config, feature", [
    ({"horizontal_protocol": ConsensusProtocol()}, "ConsensusProtocol"),
    ({"microgrids": scenarios.p2p_microgrids(3), "clearing": "mcafee"}, "McAfee"),
    ({"vertical_protocol": tariff_price_signal([0.2] * 24, mode="rule")}, "mode='rule'"),
    ({"centralized": False, "latency_steps": 1}, "latency"),
    ({"microgrids": (MicrogridSpec("MG1", (GeneratorParams(p_min_kw=0.0), ESSParams())),)},
     "p_min_kw"),
])
def test_unmodelled_features_raise_not_implemented_naming_them(config, feature):
    with pytest.raises(NotImplementedError, match=feature):
        optimum({**BASE, **config}, 0)


@pytest.mark.parametrize("day", [-1, 365, 1.5, True, "3"])
def test_bad_day_raises_value_error(day):
    with pytest.raises(ValueError, match="day"):
        optimum(BASE, day)


def test_day_outside_the_requested_split_raises_value_error():
    train_day = scenarios["p2p-2mg-v1"].train_days[0]
    with pytest.raises(ValueError, match="test"):
        optimum("p2p-2mg-v1", train_day, split="test")


def test_callers_env_is_not_stepped():
    env = MultiAgentMicrogrids(BASE)
    env.reset(seed=0, options={"start_day": 5})
    optimum(env, 100, seed=0)
    assert env.start_day == 5 and env.agents  # untouched, still at its own episode start


def test_actions_are_valid_for_the_action_spaces():
    env = MultiAgentMicrogrids(BASE)
    for step in optimum(BASE, 30, seed=0).actions:
        for a, act in step.items():
            assert act.shape == env.action_space(a).shape
            assert np.all(np.abs(act) <= 1.0)


# ------------------------------------------------------------------ the ahead market

def test_ahead_market_oracle_commits_its_plan_with_zero_imbalance_and_replays():
    sid = "market-4mg-ahead-v1"
    day = scenarios[sid].test_days[3]
    result = optimum(sid, day, seed=1, split="test")
    config = scenarios[sid].config()
    assert_replays(config, result, {"split": "test"})
    assert abs(result.cost_terms["imbalance"]) < 1e-9
    assert result.traded_kwh > 0
    env = MultiAgentMicrogrids(config)
    env.reset(seed=1, options={"start_day": day, "split": "test"})
    for step in result.actions:  # every commitment is delivered as planned
        _, _, _, _, infos = env.step(step)
        for i in infos.values():
            assert i["market"]["shortfall_kwh"] < 1e-9 and i["market"]["excess_kwh"] < 1e-9
    real_time = optimum("market-4mg-v1", day, seed=1, split="test")
    no_trade = optimum(sid, day, seed=1, split="test", trading=False)
    assert real_time.mip_objective <= result.cost <= no_trade.cost + 1e-6


def test_ahead_market_oracle_with_a_longer_lead_and_a_bid_curve_replays():
    config = {**BASE, "market_timing": "ahead", "gate_lead_steps": 3, "bid_curve_points": 2}
    result = optimum(config, 121, seed=3)
    assert_replays(config, result)
    assert abs(result.cost_terms["imbalance"]) < 1e-9


def test_ahead_market_oracle_refuses_a_vertical_protocol():
    config = {**BASE, "market_timing": "ahead",
              "vertical_protocol": tariff_price_signal([0.2] * 24, mode="fixed")}
    with pytest.raises(NotImplementedError, match="ahead market with a vertical protocol"):
        optimum(config, 0)
