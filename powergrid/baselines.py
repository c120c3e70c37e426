"""Reference policies (random, no-trade, rule-based) and an evaluator over fixed seeded days.

Policies are callables ``policy(obs: dict) -> actions: dict`` built for one env, so the
same evaluation loop serves baselines and trained agents alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# observations are float32: tariffs compare equal only to ~1e-8 relative
PRICE_TOL = 1e-6

Policy = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class RandomPolicy:
    """Uniform samples from each action space (seeded)."""

    def __init__(self, env: Any, seed: int = 0) -> None:
        self.env = env
        for i, a in enumerate(env.possible_agents):
            env.action_space(a).seed(seed + i)

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {a: self.env.action_space(a).sample() for a in obs}


class RuleBasedPolicy:
    """A transparent heuristic trader, the bar a learned policy should clear.

    - generator: run at full output when the retail tariff exceeds ``gen_on_price``;
    - ESS: charge in the morning tariff valley (energy bought late at night would outlive a
      24-hour episode) or when the sun is strong; discharge at
      the daily high; otherwise idle;
    - PV: never curtail;
    - inverter reactive power (``q`` components, with ``reactive_power``): 0, unity power
      factor;
    - market: bid/offer at mid-band (price action 0), i.e. halfway between feed-in and retail;
      in the ahead market (``quantity`` in the action) it commits the net position it
      forecasts for the delivery step (its own set-points there at nominal power, minus
      the observed load forecast, plus the PV forecast), a naive forecast-following rule;
    - an operator agent ("DSO", price action only) keeps its price at mid-range.

    Features are looked up by label (``env.obs_labels``), so extra features such as an
    operator's ``signal_price`` are used when present: the generator then follows the
    signal, which is what the grid actually charges for the hour.
    """

    def __init__(self, env: Any, gen_on_price: float = 0.2, sunny: float = 0.35) -> None:
        self.env = env
        self.gen_on_price = gen_on_price
        self.sunny = sunny
        retail = np.asarray(env.retail_price)
        self.low, self.high = float(retail.min()), float(retail.max())

    def act(self, agent: str, obs: np.ndarray) -> np.ndarray:
        feat = dict(zip(self.env.obs_labels[agent], obs.tolist()))
        retail, pv = feat.get("retail_price", 0.0), feat.get("pv_now", 0.0)
        hour = math.degrees(math.atan2(feat.get("hour_sin", 0.0), feat.get("hour_cos", 1.0)))
        labels = self.env.action_labels[agent]
        action = self._devices(labels, retail, feat.get("signal_price", retail), pv,
                               (hour % 360) / 15.0, "pv_available" in feat)
        if "quantity" in labels:  # the ahead market: commit the forecast net position
            action[labels.index("quantity")] = self._forecast_quantity(agent, feat, hour)
        return action

    def _devices(self, labels: Sequence[str], retail: float, price: float, pv: float,
                 hour: float, has_pv: bool) -> np.ndarray:
        """Device components (market components 0: mid-band price, no quantity)."""
        # only the morning valley: energy bought late at night would outlive the episode
        cheap_morning = retail <= self.low + PRICE_TOL and hour < 12.0
        action = np.zeros(len(labels), np.float32)
        for k, label in enumerate(labels):
            kind = label.split(".")[-1]
            if label.endswith("price") or "." not in label or kind == "q":
                action[k] = 0.0
            elif kind == "curtail":
                action[k] = -1.0
            elif "gen" in label:
                action[k] = 1.0 if price >= self.gen_on_price else -1.0
            elif retail >= self.high - PRICE_TOL:
                action[k] = 1.0  # discharge at the peak
            elif cheap_morning or (has_pv and pv >= self.sunny):
                action[k] = -1.0  # charge when cheap (before the peak) or on own surplus PV
        return action

    def _forecast_quantity(self, agent: str, feat: dict[str, float], hour: float) -> float:
        """Naive forecast-following commitment: the net position the rule expects at the
        delivery step (its own set-points there at nominal power, the PV and load
        forecasts), as the ``quantity`` action. Ignores ramps and SOC limits."""
        from powergrid.core.ahead import max_commit_kwh  # lazy: core imports the envs

        cfg = self.env.config
        spec = next(m for m in cfg.microgrids if m.name == agent)
        lead_h = cfg.gate_lead_steps * cfg.dt_hours
        labels = self.env.action_labels[agent]
        pv = feat.get("pv_ahead", 0.0)
        plan = self._devices(labels, feat["retail_ahead"], feat["retail_ahead"], pv,
                             ((hour + 15.0 * lead_h) % 360) / 15.0, "pv_available" in feat)
        params = {p.name: p for p in spec.devices}
        kw = -feat["load_ahead"] * spec.peak_load_kw
        for a, label in zip(plan.tolist(), labels):
            dev = params.get(label.split(".")[0])
            if dev is None:
                continue
            if label.endswith("curtail"):
                kw += pv * dev.capacity_kw * (1.0 - max(a, 0.0))
            elif "gen" in label:
                kw += dev.p_max_kw if a > 0 else 0.0
            elif hasattr(dev, "capacity_kwh"):  # storage: + discharges
                kw += a * dev.p_max_kw
        return float(np.clip(kw * cfg.dt_hours / max_commit_kwh(spec, cfg.dt_hours), -1.0, 1.0))

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {a: self.act(a, o) for a, o in obs.items()}


def run_episode(env: Any, policy: Policy, seed: int | None = None,
                options: dict | None = None) -> tuple[dict[str, float], list[dict]]:
    """Run one episode; return total cost per agent and the per-step infos."""
    obs, _ = env.reset(seed=seed, options=options)
    costs = {a: 0.0 for a in env.possible_agents}
    history = []
    while env.agents:
        obs, rewards, _, _, infos = env.step(policy(obs))
        for a, r in rewards.items():
            costs[a] -= r
        history.append(infos)
    return costs, history


def evaluate(make_env: Callable[[], Any], make_policy: Callable[[Any], Policy],
             days: Sequence[int], seed: int = 0) -> dict[str, float]:
    """Mean episode cost (all agents summed) over fixed start days, plus per-day totals."""
    env = make_env()
    policy = make_policy(env)
    totals = []
    for k, day in enumerate(days):
        costs, _ = run_episode(env, policy, seed=seed + k, options={"start_day": int(day)})
        totals.append(sum(costs.values()))
    return {"mean_cost": float(np.mean(totals)), "std_cost": float(np.std(totals)),
            "per_day": totals}


def no_trade_env_factory(config: dict | None = None) -> Callable[[], Any]:
    """Env factory for the no-trade baseline: same env, ``horizontal_protocol=None``.

    Without a horizontal protocol no P2P market clears, so every microgrid settles its
    whole net position with the upstream grid. Pair it with ``RuleBasedPolicy`` for the
    "no-trade" row of a comparison (``evaluate(no_trade_env_factory(), RuleBasedPolicy, days)``).
    """
    from powergrid.envs.config import no_trade_overrides
    from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

    cfg = {**dict(config or {}), **no_trade_overrides()}
    return lambda: MultiAgentMicrogrids(cfg)
