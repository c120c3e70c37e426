"""Example 06 - distributed mode: traded volume and cost against latency and message loss.

Orders travel to a "market" endpoint and trade confirmations back as messages through a
broker: the in-process InMemoryBroker, or with ``--broker zmq`` the ZmqBroker, where every
microgrid, the market and the operator run as separate processes exchanging the messages
over ZeroMQ (``pip install "heron-grid[distributed]"``; same numbers, slower).

Lossless and instantaneous, results equal centralized mode exactly. Today an order is valid
only for the hour it was made for, so with any latency >= 1 step every order reaches the
market after its hour has closed (``stale``) and nothing trades: the cost is the no-trade
day's. With loss, a dropped order never arrives and that microgrid settles with the grid.
The ahead market of issue 17 (orders for hour t+k placed at t, gate closure k >= 1) is
what will let distributed mode trade under latency below the gate lead time.

    python examples/06_distributed_mode.py --latency 0 1 2 --drop 0 0.1 0.3
"""

from __future__ import annotations

import argparse

from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


def run(args: argparse.Namespace, **cfg) -> tuple[dict, list]:
    env = MultiAgentMicrogrids({"start_day": args.day, "max_episode_steps": args.steps, **cfg})
    try:
        return run_episode(env, RuleBasedPolicy(env), seed=args.seed)
    finally:
        env.close()  # a ZmqBroker stops its processes here


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=int, default=172)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=int, nargs="+", default=[0, 1, 2],
                        help="broker latencies in steps (one row each)")
    parser.add_argument("--drop", type=float, nargs="+", default=[0.0, 0.1, 0.3],
                        help="message drop probabilities (one row each)")
    parser.add_argument("--broker", choices=("memory", "zmq"), default="memory")
    args = parser.parse_args(argv)

    ref, ref_hist = run(args, centralized=True)
    agents = list(ref)
    ref_cost = sum(ref.values())
    print(f"{'case':22s}{'P2P kWh':>9s}{'total cost $':>13s}{'vs central':>11s}"
          f"{'sent':>6s}{'dropped':>8s}{'stale':>6s}")
    print(f"{'centralized':22s}{_traded(ref_hist, agents):9.1f}{ref_cost:13.2f}")
    for latency in args.latency:
        for drop in args.drop:
            costs, hist = run(args, centralized=False, broker=args.broker,
                              latency_steps=latency, drop_prob=drop)
            comm = {k: sum(h[a]["comm"][k] for h in hist for a in agents)
                    for k in ("sent", "dropped", "stale")}
            total = sum(costs.values())
            print(f"{f'latency {latency}, drop {drop:g}':22s}{_traded(hist, agents):9.1f}"
                  f"{total:13.2f}{total - ref_cost:+11.2f}"
                  f"{comm['sent']:6d}{comm['dropped']:8d}{comm['stale']:6d}")
            if latency == 0 and drop == 0:
                assert costs == ref, "lossless distributed mode must equal centralized mode"


def _traded(history: list, agents: list[str]) -> float:
    """P2P kWh of the episode (each microgrid's bought kWh, summed)."""
    return sum(h[a]["market"]["bought_kwh"] for h in history for a in agents)


if __name__ == "__main__":
    main()
