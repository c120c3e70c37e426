"""CLI: ``python -m powergrid.evaluation --scenario p2p-2mg-v1 --policy rule --split test``.

Prints the per-episode table (cost, score and the main KPIs) and the mean; ``--out PREFIX``
writes ``PREFIX.csv`` (every column, plus the mean row) and ``PREFIX.json``.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from powergrid.evaluation.policies import BASELINES
from powergrid.evaluation.runner import evaluate

SHOWN = ("day", "seed", "cost", "cost_ref", "cost_opt", "score", "share_worse_off",
         "gini_savings", "traded_kwh", "gains_vs_opt", "peak_import_kw", "self_sufficiency",
         "violation_share", "losses_kwh")


def main(argv: list[str] | None = None) -> int:
    import powergrid

    parser = argparse.ArgumentParser(prog="python -m powergrid.evaluation",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="p2p-2mg-v1",
                        help=f"scenario id, one of {list(powergrid.scenarios)}")
    parser.add_argument("--policy", default="rule", help=f"one of {list(BASELINES)}")
    parser.add_argument("--split", default="test", choices=["train", "test", "all"])
    parser.add_argument("--days", type=int, nargs="*", help="only these days (in the split)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument("--out", help="write OUT.csv and OUT.json")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the no-trade and optimum references")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    try:
        result = evaluate(args.policy, args.scenario,
                          None if args.split == "all" else args.split, seeds=args.seeds,
                          days=args.days, workers=args.workers, progress=not args.quiet,
                          cache=not args.no_cache)
    except (ValueError, NotImplementedError) as exc:  # bad input, or no exact optimum
        parser.error(str(exc))
    table = result.table()
    with pd.option_context("display.max_rows", 500, "display.width", 200,
                           "display.float_format", "{:,.3f}".format):
        print(table[[c for c in SHOWN if c in table.columns]].to_string())
    mean = result.mean
    print(f"\n{result.scenario} / {result.policy} / split {result.split}: "
          f"{len(result.per_episode)} episodes, mean cost {mean['cost']:,.1f} $, "
          f"mean score {mean['score']:.3f}")
    for note in result.notes:
        print(f"note: {note}")
    if args.out:
        result.to_csv(f"{args.out}.csv")
        result.to_json(f"{args.out}.json")
        print(f"wrote {args.out}.csv and {args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
