"""Example 03 - coordination protocols side by side on the same day, seed and policy.

- P2P only: the order book (``P2PTradingProtocol``), the baseline here.
- price signal + P2P: an operator (``PriceSignalProtocol``, mode "rule") announces each
  hour's import price before the microgrids act: the retail tariff, raised when the
  microgrids together had a net demand in the previous hour and lowered under a surplus.
  The rule-based policy runs its generator when the signalled price is high.
- set-points + P2P: an operator (``SetpointProtocol``) asks every microgrid for a zero net
  grid exchange and charges ``tracking_weight`` $/kWh of deviation.
- consensus: instead of an order book, the peers agree on one price by distributed
  averaging (``ConsensusProtocol``) and trade pro rata at it.

    python examples/03_price_coordination.py --day 172 --steps 24
"""

from __future__ import annotations

import argparse

import numpy as np

from heron.protocols import ConsensusProtocol, SetpointProtocol
from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.envs.coordination import tariff_price_signal
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


def summarize(name: str, env: MultiAgentMicrogrids, costs: dict, history: list) -> None:
    agents = [a for a in env.possible_agents if a in history[0] and "market" in history[0][a]]
    exchange = np.array([sum(h[a]["grid_import_kwh"] - h[a]["grid_export_kwh"] for a in agents)
                         for h in history])
    prices = [history[t][agents[0]]["retail_price"] for t in range(len(history))]
    traded = sum(h[agents[0]]["market"]["volume_kwh"] for h in history)
    print(f"{name:22s} cost {sum(costs[a] for a in agents):9.2f} $  "
          f"peak import {exchange.max():7.1f} kWh  mean |exchange| {np.abs(exchange).mean():7.1f}"
          f" kWh  P2P {traded:7.1f} kWh  import price {min(prices):.3f}-{max(prices):.3f} $/kWh")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=int, default=172, help="day of year (0-364)")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sensitivity", type=float, default=0.5)
    args = parser.parse_args(argv)

    base = {"start_day": args.day, "max_episode_steps": args.steps}
    p2p = MultiAgentMicrogrids(base)
    signal = tariff_price_signal(p2p.retail_price, mode="rule", sensitivity=args.sensitivity)
    coordinated = MultiAgentMicrogrids({**base, "vertical_protocol": signal})
    setpoints = MultiAgentMicrogrids({**base, "vertical_protocol": SetpointProtocol(0.02)})
    consensus = MultiAgentMicrogrids({**base, "horizontal_protocol": ConsensusProtocol()})
    print(f"day {args.day}, seed {args.seed}, rule-based policy; observation of MG1 ends with "
          f"{coordinated.obs_labels['MG1'][-1]!r}")
    for name, env in (("P2P only", p2p), ("price signal + P2P", coordinated),
                      ("set-points + P2P", setpoints), ("consensus", consensus)):
        costs, history = run_episode(env, RuleBasedPolicy(env), seed=args.seed)
        summarize(name, env, costs, history)


if __name__ == "__main__":
    main()
