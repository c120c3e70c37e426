"""The scalar env clears the plain built-in market in compiled code (the kernels' trade
log rebuilt into ``Trade`` objects), exactly as the per-row Python clearing does; every
other market keeps the Python clearing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heron.market import Order, Side
from heron.market.clearing import CLEARING_RULES, UniformPrice
from heron.market.fees import PairFees
from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.core import step as core_step
from powergrid.core.market import clear_compiled, compiled_clearing
from powergrid.envs.config import default_microgrids
from powergrid.envs.coordination import Coordination
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

pytest.importorskip("numba")

RULES = sorted(CLEARING_RULES)
AGENTS = [f"MG{k + 1}" for k in range(6)]


def _random_orders(rng: np.random.Generator) -> list[Order]:
    n = int(rng.integers(0, len(AGENTS) + 1))
    agents = rng.permutation(AGENTS)[:n]
    # coarse prices and quantities: ties and exact fills exercise every branch
    return [Order(str(a), Side.BUY if rng.random() < 0.5 else Side.SELL,
                  float(rng.choice([0.5, 1.0, 2.0, rng.uniform(1e-6, 5.0)])),
                  float(rng.choice([0.10, 0.15, 0.20, rng.uniform(0.05, 0.3)])))
            for a in agents]


@pytest.mark.parametrize("fee", [0.0, 0.01])
@pytest.mark.parametrize("rule", RULES)
def test_compiled_clearing_gives_the_rules_trades(rule, fee):
    proto = P2PTradingProtocol(rule, trading_fee=fee)
    spec = proto.clearing_rule.kernel()
    rng = np.random.default_rng(15)
    traded = 0
    for _ in range(400):
        orders = _random_orders(rng)
        expected = proto.clear(orders, agents=AGENTS)
        got = clear_compiled(spec, orders, fee)
        assert got == expected
        traded += bool(expected.trades)
    assert traded > 50  # the loop really compared trades


def _microgrids(n: int) -> list:
    base = default_microgrids()
    return [replace(base[k % len(base)], name=f"MG{k + 1}") for k in range(n)]


def _rollout(config: dict, steps: int = 30) -> list:
    env = MultiAgentMicrogrids(config)
    obs, infos = env.reset(seed=3)
    rng = np.random.default_rng(7)
    out = [(obs, infos)]
    for _ in range(steps):
        acts = {a: rng.uniform(-1, 1, env.action_spaces[a].shape).astype(np.float32)
                for a in env.agents}
        obs, rew, term, trunc, infos = env.step(acts)
        out.append((obs, rew, infos))
        if not env.agents:
            break
    return out


@pytest.mark.parametrize("fee", [0.0, 0.01])
@pytest.mark.parametrize("rule", RULES)
def test_scalar_env_compiled_market_equals_the_python_clearing(rule, fee, monkeypatch):
    config = {"microgrids": _microgrids(5), "clearing": rule, "trading_fee": fee}
    compiled = _rollout(config)
    monkeypatch.setattr(core_step, "compiled_clearing", lambda coord: None)
    python = _rollout(config)
    np.testing.assert_equal(compiled, python)
    trades = [t for step in compiled[1:] for info in step[2].values()
              for t in info.get("market", {}).get("trades", [])]
    assert trades or rule == "mcafee"  # the comparison covered real trades


def _coord(proto, **cfg) -> Coordination:
    env = MultiAgentMicrogrids({"horizontal_protocol": proto, **cfg})
    return env.coordination


@pytest.mark.parametrize("rule", RULES)
def test_every_built_in_rule_clears_compiled(rule):
    assert compiled_clearing(_coord(P2PTradingProtocol(rule))) is not None


def test_a_protocol_subclass_keeps_the_python_clearing():
    class MyP2P(P2PTradingProtocol):
        pass

    assert compiled_clearing(_coord(MyP2P())) is None


def test_a_rule_subclass_keeps_the_python_clearing():
    class MyUniform(UniformPrice):
        def clear(self, book, fee_per_unit=0.0, pair_fee=None):
            return super().clear(book, fee_per_unit, pair_fee)

    assert compiled_clearing(_coord(P2PTradingProtocol(MyUniform()))) is None


def test_pair_fees_keep_the_python_clearing():
    fees = PairFees(("MG1", "MG2"), [[0, 0.01], [0.01, 0]])
    assert compiled_clearing(_coord(P2PTradingProtocol(pair_fee=fees))) is None


def test_the_broker_keeps_the_python_clearing():
    assert compiled_clearing(_coord(P2PTradingProtocol(), centralized=False)) is None


def test_a_rule_replaced_mid_episode_clears_through_its_own_clear():
    # the compiled whole step is chosen per step: a rule set after construction is used
    calls = []

    class CountingUniform(UniformPrice):
        def clear(self, book, fee_per_unit=0.0, pair_fee=None):
            calls.append(len(book))
            return super().clear(book, fee_per_unit, pair_fee)

    env = MultiAgentMicrogrids({"microgrids": _microgrids(3), "max_episode_steps": 24})
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for k in range(10):
        if k == 5:
            env.coordination.horizontal.clearing_rule = CountingUniform()
        env.step({a: rng.uniform(-1, 1, env.action_space(a).shape) for a in env.agents})
        assert len(calls) == max(k - 4, 0)


def test_a_fee_changed_mid_episode_is_charged_from_the_next_step():
    env = MultiAgentMicrogrids({"microgrids": _microgrids(4), "max_episode_steps": 24})
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    fees = []
    for k in range(12):
        if k == 6:
            env.coordination.horizontal.trading_fee = 0.02
        _, _, _, _, infos = env.step(
            {a: rng.uniform(-1, 1, env.action_space(a).shape) for a in env.agents})
        trades = [t for info in infos.values() for t in info["market"]["trades"]]
        fees.append({t.fee > 0 for t in trades})
    assert fees[:6] == [set() if not f else {False} for f in fees[:6]]
    assert any(f == {True} for f in fees[6:])
