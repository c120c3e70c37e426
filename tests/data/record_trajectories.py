"""Record (or replay) reference trajectories of MultiAgentMicrogrids for the regression test.

Why: the simulation core is being rewritten; users must see exactly the same observations,
rewards and infos as before. This script plays fixed random actions through a few configs
(N = 2, 3, 5 microgrids; tied and shared IEEE-34 feeders; non-default fees, dt and storage
terminal price) under every clearing rule and several seeds, and stores everything the env
returns in ``trajectories.npz`` (numeric leaves, float64) plus the order and trade lists
(JSON inside the same file), < 1 MB.

    PYTHONPATH=. python tests/data/record_trajectories.py      # re-record from this checkout
    PYTHONPATH=. python tests/data/record_trajectories.py 'n5_halfhour/*/s1'  # only these

Patterns (``fnmatch``) re-record only the matching cases and keep every other case's
recording as it was, so a deliberate change re-records no more than it moved.

Re-record only when the behaviour of main changes on purpose, and say so in the commit.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from heron.market import Order, Trade
from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.envs.config import default_microgrids
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

PATH = Path(__file__).with_name("trajectories.npz")
RULES = ("uniform", "pay_as_bid", "cda", "mcafee")
SEEDS = (0, 1)
STEPS = 24


def _microgrids(n: int) -> list:
    base = default_microgrids()
    return [replace(base[k % len(base)], name=f"MG{k + 1}") for k in range(n)]


# name -> config (without the clearing rule); each runs for every rule and seed
CONFIGS: dict[str, dict[str, Any]] = {
    "n2": {},
    "n3_fee_terminal": {"microgrids": _microgrids(3), "trading_fee": 0.01,
                        "storage_terminal_price": 0.1},
    "n5_halfhour": {"microgrids": _microgrids(5), "dt_hours": 0.5},
    "n3_ieee34": {"microgrids": _microgrids(3), "network": "ieee34"},
}


def cases() -> list[tuple[str, dict[str, Any], int]]:
    """(case id, env config, seed) for every recorded episode."""
    out = []
    for name, cfg in CONFIGS.items():
        for rule in RULES:
            for seed in SEEDS:
                full = {"max_episode_steps": STEPS, "horizontal_protocol": P2PTradingProtocol(),
                        **cfg, "clearing": rule}
                out.append((f"{name}/{rule}/s{seed}", full, seed))
    return out


def _leaf(value: Any) -> tuple[str, Any]:
    """('num', float) for numbers/bools/None(NaN); ('obj', json-able) for orders/trades."""
    if value is None:
        return "num", math.nan
    if isinstance(value, bool | int | float | np.number | np.bool_):
        return "num", float(value)
    if isinstance(value, Order):
        return "obj", ["order", value.agent, str(value.side), value.quantity, value.price]
    if isinstance(value, Trade):
        return "obj", ["trade", value.buyer, value.seller, value.quantity, value.price,
                       value.fee, value.surplus]
    if isinstance(value, list | tuple):
        return "obj", [_leaf(v)[1] for v in value]
    return "obj", str(value)


def flatten(tree: Any, prefix: str = "") -> dict[str, tuple[str, Any]]:
    """Nested info dicts -> {"a/b/c": (kind, value)}."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}/"))
        return out
    return {prefix[:-1]: _leaf(tree)}


def play(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run one episode with seeded uniform actions; everything the env returned, per step."""
    env = MultiAgentMicrogrids(config)
    rng = np.random.default_rng(1000 + seed)
    obs, info = env.reset(seed=seed)
    agents = list(env.possible_agents)
    steps = [(obs, {a: 0.0 for a in agents}, info)]
    actions = []
    for _ in range(STEPS):
        act = {a: rng.uniform(-1.1, 1.1, env.action_space(a).shape) for a in env.agents}
        actions.append(act)
        obs, rew, _, _, info = env.step(act)
        steps.append((obs, rew, info))
    return {"agents": agents, "actions": actions, "steps": steps}


def encode(run: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (obs, rewards, numeric infos) and a JSON-able part (keys, orders, trades)."""
    agents, steps = run["agents"], run["steps"]
    arrays = {
        "actions": np.stack([np.concatenate([a[k] for k in agents]) for a in run["actions"]]),
        "obs": np.stack([np.concatenate([o[k] for k in agents]) for o, _, _ in steps]),
        "rewards": np.array([[r[k] for k in agents] for _, r, _ in steps], float),
    }
    meta: dict[str, Any] = {"agents": agents}
    for phase, sl in (("reset", steps[:1]), ("step", steps[1:])):
        flat = [[flatten(info[k]) for k in agents] for _, _, info in sl]
        keys = sorted(set().union(*(f.keys() for row in flat for f in row)))
        num = sorted(k for k in keys if flat[0][0].get(k, ("num",))[0] == "num")
        obj = [k for k in keys if k not in num]
        arrays[f"{phase}_info"] = np.array(
            [[[f.get(k, ("num", math.nan))[1] for k in num] for f in row] for row in flat], float)
        meta[f"{phase}_num_keys"] = num
        meta[f"{phase}_obj"] = {k: [[f[k][1] for f in row] for row in flat] for k in obj}
    return arrays, meta


def record(path: Path = PATH, patterns: list[str] | None = None) -> None:
    """(Re-)record every case, or only those matching ``patterns`` (others kept)."""
    store: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    if patterns:
        store, meta = load(path)
    for case, cfg, seed in cases():
        if patterns and not any(fnmatch(case, p) for p in patterns):
            continue
        arrays, m = encode(play(cfg, seed))
        for k, v in arrays.items():
            store[f"{case}/{k}"] = v
        meta[case] = m
    store["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(path, **store)


def load(path: Path = PATH) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    return arrays, meta


if __name__ == "__main__":
    record(patterns=sys.argv[1:])
    print(f"wrote {PATH} ({PATH.stat().st_size / 1024:.0f} KiB, {len(cases())} episodes)")
