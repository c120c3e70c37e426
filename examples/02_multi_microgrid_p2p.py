"""Example 02 - the seed scenario: two IEEE-13 microgrids trade energy peer-to-peer.

MG1 (generator + battery, commercial load) and MG2 (battery + PV, residential load) run
one 24-hour day. Each hour prints every microgrid's net position, its order, the trades,
the grid exchange and the reward; then the episode totals, and the same day without P2P
trading (every microgrid settles only with the grid) for comparison.

    python examples/02_multi_microgrid_p2p.py
    python examples/02_multi_microgrid_p2p.py --clearing pay_as_bid --policy random
"""

from __future__ import annotations

import argparse

from heron.market import CLEARING_RULES
from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.baselines import RandomPolicy, RuleBasedPolicy, run_episode
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

POLICIES = {"rule": RuleBasedPolicy, "random": RandomPolicy}


def make_env(clearing: str | None, day: int, fee: float = 0.0) -> MultiAgentMicrogrids:
    protocol = None if clearing is None else P2PTradingProtocol(clearing, trading_fee=fee)
    return MultiAgentMicrogrids({"centralized": True, "max_episode_steps": 24,
                                 "horizontal_protocol": protocol, "start_day": day})


def print_hour(infos: dict) -> None:
    first = next(iter(infos.values()))
    price = first["market"]["clearing_price"]
    price_txt = "  no trade" if price is None else f"  cleared {first['market']['volume_kwh']:7.1f} kWh @ {price:.3f} $/kWh"
    print(f"hour {first['hour']:02d}  retail {first['retail_price']:.2f}  "
          f"feed-in {first['feed_in_price']:.2f}{price_txt}")
    for a, inf in infos.items():
        orders = ", ".join(f"{o.side.value} {o.quantity:.1f} kWh <= {o.price:.3f}"
                           for o in inf["market"]["orders"]) or "-"
        trades = ", ".join(f"{'bought' if t.buyer == a else 'sold'} {t.quantity:.1f} @ {t.price:.3f}"
                           for t in inf["market"]["trades"]) or "-"
        print(f"   {a}: net {inf['net_kw']:+8.1f} kW | order {orders} | trades {trades} | "
              f"grid +{inf['grid_import_kwh']:.1f}/-{inf['grid_export_kwh']:.1f} kWh | "
              f"reward {-inf['costs']['total']:+8.2f} $")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clearing", default="uniform", choices=sorted(CLEARING_RULES))
    parser.add_argument("--policy", default="rule", choices=sorted(POLICIES))
    parser.add_argument("--day", type=int, default=172, help="day of year (0-364)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fee", type=float, default=0.0, help="trading fee $/kWh")
    parser.add_argument("--plot", default=None, help="write an episode figure to this PNG")
    parser.add_argument("--quiet", action="store_true", help="only print the totals")
    args = parser.parse_args(argv)

    env = make_env(args.clearing, args.day, args.fee)
    costs, history = run_episode(env, POLICIES[args.policy](env), seed=args.seed)
    if not args.quiet:
        for infos in history:
            print_hour(infos)
    traded = sum(h[env.possible_agents[0]]["market"]["volume_kwh"] for h in history)
    print(f"\nEpisode (day {args.day}, {args.clearing}, {args.policy} policy): "
          f"traded {traded:.1f} kWh P2P")
    for a in env.possible_agents:
        imp = sum(h[a]["grid_import_kwh"] for h in history)
        exp = sum(h[a]["grid_export_kwh"] for h in history)
        print(f"   {a}: cost {costs[a]:9.2f} $  grid import {imp:8.1f} kWh  export {exp:8.1f} kWh")
    base_env = make_env(None, args.day)
    base_costs, base_history = run_episode(base_env, POLICIES[args.policy](base_env),
                                           seed=args.seed)
    p2p, base = sum(costs.values()), sum(base_costs.values())
    print(f"Total cost with P2P: {p2p:.2f} $   without P2P (grid only): {base:.2f} $   "
          f"saving {base - p2p:.2f} $ ({100 * (base - p2p) / abs(base):.1f} %)")
    if args.plot:
        from powergrid.viz import plot_episode

        plot_episode(history, args.plot, env=env, reference=base_history)  # no-trade dashed
        print(f"figure written to {args.plot}")


if __name__ == "__main__":
    main()
