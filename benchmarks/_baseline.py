"""Run a benchmark script against another checkout (the commit before a change), same run.

Why: the machine is shared and noisy, so a speed-up is only meaningful as a ratio against
the old code timed in the same run. ``python benchmarks/bench_env.py --baseline DIR``
where DIR is e.g. ``git worktree add --detach /tmp/base <commit>``: the script re-runs
itself with ``PYTHONPATH=DIR`` (so it imports the old package) and ``--json``, between
and after its own repeats.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_baseline(script: str, src: str, args: list[str]) -> list[dict]:
    """Results (the script's ``--json`` rows) of ``script`` run on the package in ``src``."""
    src = str(Path(src).resolve())
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, str(Path(script).resolve()), *args, "--json"],
                         cwd=src, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"baseline run in {src} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def best_by_setting(*runs: list[dict]) -> dict[str, dict]:
    """Merge repeated runs: the best (highest) rate per setting."""
    best: dict[str, dict] = {}
    for run in runs:
        for row in run:
            old = best.get(row["setting"])
            if old is None or row["rate"] > old["rate"]:
                best[row["setting"]] = row
    return best


def baseline_best(script: str, src: str | None, args: list[str],
                  before: list[list[dict]]) -> dict[str, dict]:
    """The baseline's best rate per setting: the ``before`` runs and, with ``src``, one
    more run after this checkout's (load drifts hit both); empty without a baseline."""
    runs = [*before, run_baseline(script, src, args)] if src else list(before)
    return best_by_setting(*runs)
