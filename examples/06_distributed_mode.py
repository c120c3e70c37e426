"""Example 06 - distributed mode: the same day through a message broker.

Orders travel to a "market" endpoint and trade confirmations back as messages through an
InMemoryBroker. Lossless and instantaneous, the results equal centralized mode exactly;
with latency an order reaches the market after its hour has closed and is discarded
(``stale``), with loss it never arrives (``dropped``): either way that microgrid settles
with the grid at the tariff.

    python examples/06_distributed_mode.py --latency 1 --drop 0.2
"""

from __future__ import annotations

import argparse

from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


def run(args: argparse.Namespace, **cfg) -> tuple[dict, list]:
    env = MultiAgentMicrogrids({"start_day": args.day, "max_episode_steps": args.steps, **cfg})
    return run_episode(env, RuleBasedPolicy(env), seed=args.seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=int, default=172)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=int, default=1, help="broker latency in steps")
    parser.add_argument("--drop", type=float, default=0.2, help="message drop probability")
    args = parser.parse_args(argv)

    ref, _ = run(args, centralized=True)
    cases = {"distributed, lossless": {},
             f"latency {args.latency}": {"latency_steps": args.latency},
             f"drop {args.drop}": {"drop_prob": args.drop},
             f"latency {args.latency} + drop {args.drop}": {"latency_steps": args.latency,
                                                           "drop_prob": args.drop}}
    print(f"{'case':28s}{'total cost $':>13s}{'vs central':>11s}{'P2P kWh':>9s}"
          f"{'sent':>6s}{'dropped':>8s}{'stale':>6s}")
    print(f"{'centralized':28s}{sum(ref.values()):13.2f}")
    for name, cfg in cases.items():
        costs, hist = run(args, centralized=False, **cfg)
        comm = {k: sum(h[a]["comm"][k] for h in hist for a in ref) for k in ("sent", "dropped",
                                                                            "stale")}
        traded = sum(h[next(iter(ref))]["market"]["volume_kwh"] for h in hist)
        diff = sum(costs.values()) - sum(ref.values())
        print(f"{name:28s}{sum(costs.values()):13.2f}{diff:+11.2f}{traded:9.1f}"
              f"{comm['sent']:6d}{comm['dropped']:8d}{comm['stale']:6d}")
        if not cfg:
            assert costs == ref, "lossless distributed mode must equal centralized mode"


if __name__ == "__main__":
    main()
