"""Example 06 - distributed mode: traded volume and cost against latency and message loss.

Orders travel to a "market" endpoint and trade confirmations back as messages through a
broker: the in-process InMemoryBroker, or with ``--broker zmq`` the ZmqBroker, where every
microgrid, the market and the operator run as separate processes exchanging the messages
over ZeroMQ (``pip install "heron-grid[distributed]"``; same numbers, slower).

Lossless and instantaneous, results equal centralized mode exactly, in either market. In
the real-time market an order is valid only for the hour it was made for, so with any
latency >= 1 step every order reaches the market after its hour has closed (``stale``) and
nothing trades. In the ahead market (``market_timing="ahead"``) orders for step t+k are
placed at t and valid until the gate of t+k closes at t+k-1: with latency below the gate
lead ``k`` (``--lead``) they still trade. A dropped order never arrives and that microgrid
settles with the grid (and, ahead, nothing is committed for it).

    python examples/06_distributed_mode.py --latency 0 1 2 --drop 0 0.1 0.3 --lead 2
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
    parser.add_argument("--lead", type=int, default=2,
                        help="gate_lead_steps of the ahead market")
    parser.add_argument("--market", choices=("real_time", "ahead"), nargs="+",
                        default=["real_time", "ahead"])
    parser.add_argument("--broker", choices=("memory", "zmq"), default="memory")
    args = parser.parse_args(argv)

    print(f"{'market':11s}{'case':22s}{'P2P kWh':>9s}{'total cost $':>13s}{'vs central':>11s}"
          f"{'imbalance $':>12s}{'sent':>6s}{'dropped':>8s}{'stale':>6s}")
    for market in args.market:
        timing = ({"market_timing": "ahead", "gate_lead_steps": args.lead}
                  if market == "ahead" else {})
        name = f"ahead k={args.lead}" if market == "ahead" else market
        ref, ref_hist = run(args, centralized=True, **timing)
        agents = list(ref)
        ref_cost = sum(ref.values())
        print(f"{name:11s}{'centralized':22s}{_traded(ref_hist, agents):9.1f}{ref_cost:13.2f}"
              f"{'':11s}{_imbalance(ref_hist, agents):12.2f}")
        for latency in args.latency:
            for drop in args.drop:
                costs, hist = run(args, centralized=False, broker=args.broker,
                                  latency_steps=latency, drop_prob=drop, **timing)
                comm = {k: sum(h[a]["comm"][k] for h in hist for a in agents)
                        for k in ("sent", "dropped", "stale")}
                total = sum(costs.values())
                print(f"{name:11s}{f'latency {latency}, drop {drop:g}':22s}"
                      f"{_traded(hist, agents):9.1f}{total:13.2f}{total - ref_cost:+11.2f}"
                      f"{_imbalance(hist, agents):12.2f}"
                      f"{comm['sent']:6d}{comm['dropped']:8d}{comm['stale']:6d}")
                if latency == 0 and drop == 0:
                    assert costs == ref, "lossless distributed mode must equal centralized mode"


def _imbalance(history: list, agents: list[str]) -> float:
    """Imbalance cost of the episode, $ (0 in the real-time market)."""
    return sum(h[a]["costs"].get("imbalance", 0.0) for h in history for a in agents)


def _traded(history: list, agents: list[str]) -> float:
    """P2P kWh of the episode (each microgrid's bought kWh, summed)."""
    return sum(h[a]["market"]["bought_kwh"] for h in history for a in agents)


if __name__ == "__main__":
    main()
