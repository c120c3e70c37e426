"""The runner: a policy on every day of a scenario's split, scored against its references.

For each (day, seed) it plays three episodes from ``reset(seed, {"start_day": day,
"split": split})``: the policy, the no-trade reference (``RuleBasedPolicy`` without a
market, the score's 0) and the optimum (the oracle's actions replayed, the score's 1), and
returns one table row of KPIs (``powergrid.evaluation.kpis``). The two references depend
only on the scenario, day and seed, so their KPIs are cached on disk, keyed by a hash of
the scenario's config and of the source of ``powergrid`` and ``heron`` (any code change
recomputes them).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from powergrid.envs.config import EnvConfig, no_trade_overrides
from powergrid.envs.days import check_split
from powergrid.evaluation.episode import Episode
from powergrid.evaluation.kpis import EpisodeMetrics, episode_metrics, relative_metrics
from powergrid.evaluation.policies import Baseline, PolicyFactory, get_baseline
from powergrid.scenarios import Scenario, get, make

REFERENCE = "no-trade"
OPTIMUM = "oracle"


@dataclass(frozen=True)
class _Task:
    scenario: Scenario
    policy: Baseline
    day: int
    seed: int
    split: str | None


@dataclass
class EvaluationResult:
    """Per-episode KPI table of one policy on one scenario split, and its mean."""

    scenario: str
    policy: str
    split: str | None
    per_episode: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def mean(self) -> pd.Series:
        return self.per_episode.drop(columns=["day", "seed"]).mean(numeric_only=True)

    def table(self) -> pd.DataFrame:
        """Every episode, then a row ``mean`` (index) with the mean of each column."""
        mean = self.mean.to_frame("mean").T
        return pd.concat([self.per_episode, mean]).rename_axis("episode")

    def to_csv(self, path: str | Path) -> None:
        self.table().to_csv(path)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({
            "scenario": self.scenario, "policy": self.policy, "split": self.split,
            "notes": self.notes, "mean": _jsonable(self.mean.to_dict()),
            "episodes": [_jsonable(r) for r in self.per_episode.to_dict("records")],
        }, indent=1))


def evaluate(policy: str | PolicyFactory | Baseline, scenario: str | Scenario,
             split: str | None = "test", seeds: Sequence[int] = (0,),
             days: Sequence[int] | None = None, *, workers: int = 1, progress: bool = True,
             cache: bool | str | Path = True) -> EvaluationResult:
    """Evaluate ``policy`` on every day of ``split`` of ``scenario`` (or on ``days``).

    ``policy``: a registered name (``"random"``, ``"no-trade"``, ``"rule"``, ``"oracle"``)
    or a factory ``env -> policy`` (called once per worker env). ``workers > 1`` runs the
    episodes in that many processes (factories must then be picklable). ``cache``: False,
    True (``$HERON_GRID_CACHE`` or ``~/.cache/heron-grid``) or a directory.
    Unknown names and days outside the split or the year raise ``ValueError``.
    """
    sc = get(scenario)
    check_split(split, "split")
    spec = _baseline(policy)
    days = _days(sc, split, days)
    seeds = [_int_seed(s) for s in seeds]
    episodes = [(d, s) for d in days for s in seeds]
    store = _ReferenceStore(sc, cache)
    refs = {name: get_baseline(name) for name in (REFERENCE, OPTIMUM)}
    is_ref = spec in refs.values()
    tasks = [] if is_ref else [_Task(sc, spec, d, s, split) for d, s in episodes]
    for name, ref in refs.items():
        tasks += [_Task(sc, ref, d, s, split) for d, s in episodes if not store.has(name, d, s)]
    results = _run(tasks, workers, progress, f"{sc.id} {spec.name}")
    own = {}
    for task, res in zip(tasks, results):
        if task.policy is spec and not is_ref:
            own[(task.day, task.seed)] = res
        else:
            store.put(task.policy.name, task.day, task.seed, res)
    store.save()

    notes, rows = [], []
    for d, s in episodes:
        metrics = store.get(spec.name, d, s) if is_ref else own[(d, s)]
        if isinstance(metrics, str):  # only the optimum may be unavailable
            raise NotImplementedError(metrics)
        opt = store.get(OPTIMUM, d, s)
        if isinstance(opt, str):
            if f"no optimum, score is NaN: {opt}" not in notes:
                notes.append(f"no optimum, score is NaN: {opt}")
            opt = None
        rows.append(_row(d, s, metrics, store.get(REFERENCE, d, s), opt))
    return EvaluationResult(sc.id, spec.name, split, pd.DataFrame(rows), notes)


def run_policy_episode(env: Any, policy: Any, day: int, seed: int,
                       split: str | None) -> Episode:
    """One episode of ``policy`` in ``env`` from ``reset(seed, start_day=day, split)``."""
    if hasattr(policy, "start_episode"):
        policy.start_episode(day, seed)
    obs, _ = env.reset(seed=seed, options={"start_day": day, "split": split})
    history = []
    while env.agents:
        obs, _, _, _, infos = env.step(policy(obs))
        history.append(infos)
    agents = [m.name for m in env.config.microgrids]
    return Episode.from_infos(agents, history, env.config.dt_hours, env.config.voltage_band)


# ---------------------------------------------------------------------- internals
def _baseline(policy: str | PolicyFactory | Baseline) -> Baseline:
    if isinstance(policy, Baseline):
        return policy
    if isinstance(policy, str):
        return get_baseline(policy)
    if callable(policy):
        name = getattr(policy, "__name__", type(policy).__name__)
        return Baseline(name, "user policy", policy)
    raise ValueError(f"policy must be a registered name, a factory env -> policy or a "
                     f"Baseline, got {type(policy).__name__}")


def _days(sc: Scenario, split: str | None, days: Sequence[int] | None) -> list[int]:
    if days is None:
        return list(sc.days(split))
    return [sc.split.check(d, split, "day") for d in days]


def _int_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seeds must be ints >= 0, got {seed!r}")
    return seed


def _row(day: int, seed: int, m: EpisodeMetrics, ref: EpisodeMetrics,
         opt: EpisodeMetrics | None) -> dict[str, float]:
    rel = relative_metrics(m, ref, opt)
    own = m.to_dict()
    row: dict[str, float] = {"day": day, "seed": seed, "cost": m.cost}
    row.update({k: rel.pop(k) for k in ("cost_ref", "cost_opt", "score", "saving")})
    row.update({f"cost_{a}": c for a, c in m.cost_per_agent.items()})
    row.update({k: rel.pop(k) for k in list(rel) if k.startswith("saving_")})
    row.update({k: rel.pop(k) for k in ("share_worse_off", "gini_savings")})
    row.update({k: own[k] for k in ("traded_kwh", "gains_from_trade")})
    row.update(rel)  # gains_from_trade_opt, gains_vs_opt
    row.update({k: v for k, v in own.items() if k not in row and k != "cost_per_agent"})
    return row


# one env and policy per (scenario, baseline) per process: building a network is the slow part
_LOCAL: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _play(task: _Task) -> EpisodeMetrics | str:
    key = (task.scenario.id, task.policy.name, id(task.policy.factory))
    if key not in _LOCAL:
        overrides = {} if task.policy.trading else no_trade_overrides()
        env = make(task.scenario, **overrides)
        _LOCAL[key] = (env, task.policy.factory(env))
    env, policy = _LOCAL[key]
    try:
        ep = run_policy_episode(env, policy, task.day, task.seed, task.split)
    except NotImplementedError as exc:
        if task.policy != get_baseline(OPTIMUM):  # equal, not identical, in a worker
            raise
        return f"{task.scenario.id}: {exc}"
    return episode_metrics(ep)


def _run(tasks: Sequence[_Task], workers: int, progress: bool, label: str) -> list:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    bar = _progress(progress, len(tasks), label)
    if workers == 1 or len(tasks) <= 1:
        out = []
        for t in tasks:
            out.append(_play(t))
            bar.update(1)
    else:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with live threads
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            out = []
            for res in pool.map(_play, tasks, chunksize=max(1, len(tasks) // (4 * workers))):
                out.append(res)
                bar.update(1)
    bar.close()
    return out


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool, total: int, label: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="episode")


class _ReferenceStore:
    """KPIs of the reference and optimum episodes by (name, day, seed), optionally on disk."""

    def __init__(self, sc: Scenario, cache: bool | str | Path) -> None:
        self._data: dict[str, Any] = {}
        self._path: Path | None = None
        if cache is False:
            return
        root = Path(os.environ.get("HERON_GRID_CACHE", Path.home() / ".cache" / "heron-grid")
                    if cache is True else cache)
        self._path = root / "evaluation" / f"{sc.id}-{_fingerprint(sc)[:16]}.json"
        if self._path.exists():
            try:
                self._data = json.loads(self._path.read_text())
            except (OSError, ValueError):
                self._data = {}  # a corrupt cache is recomputed, never trusted

    @staticmethod
    def _key(name: str, day: int, seed: int) -> str:
        return f"{name}:{day}:{seed}"

    def has(self, name: str, day: int, seed: int) -> bool:
        return self._key(name, day, seed) in self._data

    def get(self, name: str, day: int, seed: int) -> EpisodeMetrics | str:
        value = self._data[self._key(name, day, seed)]
        return value if isinstance(value, str) else EpisodeMetrics.from_dict(value)

    def put(self, name: str, day: int, seed: int, value: EpisodeMetrics | str) -> None:
        self._data[self._key(name, day, seed)] = (value if isinstance(value, str)
                                                  else value.to_dict())

    def save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._data))
        tmp.replace(self._path)


def _fingerprint(sc: Scenario) -> str:
    """Hash of the scenario's config and of every source/data file of powergrid and heron."""
    import heron
    import powergrid

    h = hashlib.sha256(str(EnvConfig.from_dict(sc.config())).encode())
    for pkg in (powergrid, heron):
        root = Path(pkg.__file__).parent
        for f in sorted(_files(root)):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _files(root: Path) -> Iterable[Path]:
    for pattern in ("*.py", "*.npz", "*.csv"):
        yield from root.rglob(pattern)


def _jsonable(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else
                v.item() if hasattr(v, "item") else v) for k, v in d.items()}

