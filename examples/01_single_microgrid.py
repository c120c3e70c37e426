"""Example 01 - one IEEE-13 microgrid (generator + battery + PV) against the grid tariff.

The smallest useful setup: a single agent, no market (``horizontal_protocol=None``), so the
only decisions are dispatch. Compares the rule-based and random policies on one day and
prints the hour-by-hour dispatch of the rule-based one.

    python examples/01_single_microgrid.py --day 172
"""

from __future__ import annotations

import argparse

from powergrid.baselines import RandomPolicy, RuleBasedPolicy, run_episode
from powergrid.devices import ESSParams, GeneratorParams, SolarParams
from powergrid.envs.config import MicrogridSpec
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


def make_env(day: int) -> MultiAgentMicrogrids:
    mg = MicrogridSpec("MG", (GeneratorParams(), ESSParams(), SolarParams(capacity_kw=800.0)),
                       peak_load_kw=1000.0, load_profile="commercial")
    return MultiAgentMicrogrids({"microgrids": [mg], "horizontal_protocol": None,
                                 "start_day": day})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=int, default=172, help="day of year (0-364)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = make_env(args.day)
    print(f"actions: {env.action_labels['MG']}\nobservations: {env.obs_labels['MG']}\n")
    costs, history = run_episode(env, RuleBasedPolicy(env), seed=args.seed)
    print("hour  load kW  gen kW  ess kW   soc  pv kW  grid kWh  cost $")
    for infos in history:
        i = infos["MG"]
        d = i["devices"]
        grid = i["grid_import_kwh"] - i["grid_export_kwh"]
        print(f"{i['hour']:>4}  {i['load_kw']:7.1f}  {d['gen']['p_kw']:6.1f}  "
              f"{d['ess']['p_kw']:6.1f}  {d['ess']['soc']:.2f}  {d['pv']['p_kw']:5.1f}  "
              f"{grid:8.1f}  {i['costs']['total']:6.2f}")
    random_costs, _ = run_episode(env, RandomPolicy(env, seed=args.seed), seed=args.seed)
    print(f"\nday {args.day}: rule-based cost {costs['MG']:.2f} $, "
          f"random cost {random_costs['MG']:.2f} $")


if __name__ == "__main__":
    main()
