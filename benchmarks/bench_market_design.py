"""Does the market design matter? The four clearing rules under three policies, test days.

For each policy (rule-based, reservation bidder, random) and clearing rule (uniform,
pay_as_bid, cda, mcafee) this plays every held-out test day of a scenario (default
``market-4mg-v1``) and reports, per day: P2P volume, the volume-weighted P2P price,
gains from trade (what the market saved the microgrids against settling the same net
positions with the grid, ``powergrid.evaluation.gains_from_trade``), the market
operator's budget surplus (McAfee's trade reduction), the total cost, and the Gini
coefficient of the microgrids' gains from trade over all test days (fairness: 0 = equal).

The reservation bidder dispatches like the rule-based policy but posts its reservation
price instead of the mid-band: a bid at the top of the band (the grid's retail price) when
it expects to buy, an ask at the bottom (feed-in) when it expects to sell, expecting last
hour's net position (persistence). Dispatch does not depend on the market, so every rule
sees the same net positions: differences below are the rule's alone.

    nice -n 10 python benchmarks/bench_market_design.py            # the docs/market.md table
    nice -n 10 python benchmarks/bench_market_design.py --days 5   # quick look
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import powergrid  # noqa: E402
from heron.market import CLEARING_RULES  # noqa: E402
from powergrid.baselines import RandomPolicy, RuleBasedPolicy  # noqa: E402
from powergrid.evaluation import Episode, gini  # noqa: E402


class ReservationBidder(RuleBasedPolicy):
    """Rule-based dispatch; limit price = the grid alternative of the expected side."""

    def act(self, agent: str, obs: np.ndarray) -> np.ndarray:
        action = super().act(agent, obs)
        feat = dict(zip(self.env.obs_labels[agent], obs.tolist()))
        last_net = feat["last_p2p_kwh"] + feat["last_grid_kwh"]  # sold + exported - bought...
        if feat["hour_sin"] == 0.0 and feat["hour_cos"] == 1.0 and last_net == 0.0:
            last_net = feat["pv_now"] - feat["load_now"]  # first hour: no history yet
        for k, label in enumerate(self.env.action_labels[agent]):
            if label.endswith("price"):
                action[k] = -1.0 if last_net > 0 else 1.0
        return action


def _random(env: Any) -> RandomPolicy:
    return RandomPolicy(env, seed=0)


POLICIES = {"rule": RuleBasedPolicy, "reservation": ReservationBidder, "random": _random}


def market_of(history: list[dict]) -> tuple[float, float, float]:
    """(volume kWh, value $, operator surplus $) of an episode, each trade counted once."""
    volume = value = surplus = 0.0
    for infos in history:
        for a, info in infos.items():
            for tr in info.get("market", {}).get("trades", ()):
                if tr.buyer == a:
                    volume += tr.quantity
                    value += tr.quantity * tr.price
                    surplus += tr.surplus
    return volume, value, surplus


def measure(scenario: str, policy: str, rule: str, days: list[int]) -> dict[str, float]:
    env = powergrid.make(scenario, clearing=rule, split=None)
    agents = [m.name for m in env.config.microgrids]
    volume = value = surplus = cost = 0.0
    gains = np.zeros(len(agents))
    for day in days:
        pol = POLICIES[policy](env) if policy != "random" else RandomPolicy(env, seed=day)
        history = _play(env, pol, day)
        ep = Episode.from_infos(agents, history, env.config.dt_hours)
        v, val, s = market_of(history)
        volume, value, surplus = volume + v, value + val, surplus + s
        cost += float(ep.cost.sum())
        grid_only = (np.maximum(-ep.net_kwh, 0.0) * ep.retail
                     - np.maximum(ep.net_kwh, 0.0) * ep.feed_in)
        gains += (grid_only - ep.settlement).sum(axis=0)
    n = len(days)
    return {"kwh/day": volume / n, "price": value / volume if volume else float("nan"),
            "gains $/day": gains.sum() / n, "surplus $/day": surplus / n,
            "cost $/day": cost / n, "gini": gini(gains)}


def _play(env: Any, policy: Any, day: int) -> list[dict]:
    history: list[dict] = []
    obs, _ = env.reset(seed=day, options={"start_day": day})
    while env.agents:
        obs, _, _, _, infos = env.step(policy(obs))
        history.append(infos)
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="market-4mg-v1")
    parser.add_argument("--days", type=int, default=None, help="first N test days (default all)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    days = list(powergrid.scenarios[args.scenario].test_days)[:args.days]
    cases = [(p, r) for p in POLICIES for r in CLEARING_RULES]
    rows = []
    for p, r in tqdm(cases, desc="policy x rule", disable=args.no_progress, file=sys.stderr):
        rows.append((p, r, measure(args.scenario, p, r, days)))
    cols = list(rows[0][2])
    print(f"{args.scenario}, {len(days)} test days (mean per day; gini over the days' totals)\n")
    print("| policy | rule | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for p, r, m in rows:
        print(f"| {p} | {r} | " + " | ".join(f"{m[c]:.3f}" if c in ("price", "gini")
                                           else f"{m[c]:.1f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
