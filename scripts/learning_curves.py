"""Learning-curve figure of the docs: test score vs env steps, with the reference lines.

Each ``--run LABEL=DIR`` is one training run (examples/07 or 05 wrote ``DIR/learning_curve.csv``
with ``env_steps`` and ``test_score``, and ``DIR/summary.json`` with ``rule_score``); runs
with the same label are seeds of one algorithm and are drawn as their mean with a min-max
band. ``--keep CSV`` adds the runs of an earlier ``OUT.csv`` (same labels), so a new
algorithm can join the figure without re-training the others. Writes ``OUT.csv`` (every
point of every run) and ``OUT.png``.

    python scripts/learning_curves.py --out docs/img/learning_curves \\
        --run MAPPO=runs/mappo-s1 --run MAPPO=runs/mappo-s2 --run PPO=runs/ppo-s1
    python scripts/learning_curves.py --keep docs/img/learning_curves.csv \\
        --run RLlib=runs/rllib-s1
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_run(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    rows = list(csv.DictReader(open(path / "learning_curve.csv")))
    steps = np.array([float(r["env_steps"]) for r in rows])
    score = np.array([float(r["test_score"]) for r in rows])
    rule = json.loads((path / "summary.json").read_text())["rule_score"]
    return steps, score, float(rule)


def read_kept(path: Path) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """The runs of an ``OUT.csv`` this script wrote: label -> [(run, steps, scores)]."""
    points: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in csv.DictReader(open(path)):
        points[r["algorithm"], r["run"]].append((float(r["env_steps"]), float(r["test_score"])))
    runs: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = defaultdict(list)
    for (label, name), xy in points.items():
        steps, score = np.array(xy).T
        runs[label].append((name, steps, score))
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=DIR")
    parser.add_argument("--keep", type=Path, default=None, metavar="CSV",
                        help="also draw the runs of this earlier output CSV")
    parser.add_argument("--out", default="docs/img/learning_curves")
    parser.add_argument("--title", default="p2p-2mg-v1, score on the 52 test days")
    args = parser.parse_args(argv)

    runs = read_kept(args.keep) if args.keep else defaultdict(list)
    rules = set()
    for spec in args.run:
        label, _, folder = spec.partition("=")
        if not folder:
            raise ValueError(f"--run expects LABEL=DIR, got {spec!r}")
        steps, score, rule = read_run(Path(folder))
        name = Path(folder).name  # replaces a kept run of the same label and name
        runs[label] = [r for r in runs[label] if r[0] != name] + [(name, steps, score)]
        rules.add(round(rule, 9))
    if len(rules) != 1:
        raise ValueError(f"runs disagree on the rule-based score ({sorted(rules)}): "
                         "they were not evaluated on the same days")
    rule_score = rules.pop()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["algorithm", "run", "env_steps", "test_score"])
        for label, seeds in runs.items():
            for name, steps, score in seeds:
                writer.writerows([label, name, int(s), f"{v:.6f}"] for s, v in zip(steps, score))

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, seeds in runs.items():
        n = min(len(s) for _, s, _ in seeds)  # seeds share the evaluation steps
        steps = seeds[0][1][:n]
        scores = np.stack([sc[:n] for _, _, sc in seeds])
        seeds_label = f"{len(seeds)} seed" + ("s" if len(seeds) > 1 else "")
        line, = ax.plot(steps, scores.mean(axis=0), label=f"{label} ({seeds_label})",
                        marker="o" if n < 10 else None, markersize=4)  # short runs visible
        if len(seeds) > 1:
            ax.fill_between(steps, scores.min(axis=0), scores.max(axis=0),
                            color=line.get_color(), alpha=0.2)
    ax.axhline(1.0, color="black", linestyle="--", label="optimum (perfect foresight)")
    ax.axhline(rule_score, color="gray", linestyle="-.", label=f"rule-based ({rule_score:.3f})")
    ax.axhline(0.0, color="gray", linestyle=":", label="no-trade rule-based")
    ax.set_xlabel("env steps (one step = one hour of one env copy)")
    ax.set_ylabel("score (0 = no-trade rule, 1 = optimum)")
    ax.set_ylim(-0.1, 1.05)
    ax.set_title(args.title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
