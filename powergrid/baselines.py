"""Reference policies (random, no-trade, rule-based) and an evaluator over fixed seeded days.

Policies are callables ``policy(obs: dict) -> actions: dict`` built for one env, so the
same evaluation loop serves baselines and trained agents alike.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
      factor (:class:`VoltVarPolicy` adds the IEEE 1547 volt-var droop);
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


@dataclass(frozen=True)
class VoltVarCurve:
    """A volt-var droop: reactive power (fraction of the inverter's kVA, + injects) against
    the voltage at its terminal (pu); piecewise linear through the points, flat outside.

    The default is IEEE 1547-2018's default curve for Category B (Table 8): deadband
    0.98-1.02 pu, 44 % of nameplate kVA injected at 0.92 pu and below, absorbed at 1.08 pu
    and above.
    """

    v_pu: tuple[float, ...] = (0.92, 0.98, 1.02, 1.08)
    q_frac: tuple[float, ...] = (0.44, 0.0, 0.0, -0.44)

    def __post_init__(self) -> None:
        v, q = np.asarray(self.v_pu, float), np.asarray(self.q_frac, float)
        if (len(v) < 2 or v.shape != q.shape or not np.all(np.isfinite(v))
                or not np.all(np.isfinite(q)) or np.any(np.diff(v) <= 0)
                or np.any(np.diff(q) > 0) or np.any(np.abs(q) > 1)):
            raise ValueError(f"VoltVarCurve({self.v_pu}, {self.q_frac}): expected >= 2 "
                             f"increasing finite voltages and as many non-increasing "
                             f"fractions in [-1, 1]")

    def __call__(self, v_pu: np.ndarray) -> np.ndarray:
        return np.interp(v_pu, self.v_pu, self.q_frac)


CATEGORY_B = VoltVarCurve()


class VoltVarPolicy:
    """``base`` (default: the rule) for active power and the market, plus a volt-var droop
    on every inverter's ``q`` (with ``reactive_power``; without it this is ``base``).

    Real inverters settle on their droop within seconds (IEEE 1547: 5 s open-loop
    response), so over an hourly step their reactive power is the equilibrium
    ``Q = curve(V(Q)) x s_kva`` (limited to the kVA circle): the policy finds it by damped
    fixed-point iteration on its own copy of the fast power flow, with every device's
    active power of this step (the devices stepped on copies) and the load forecasts of
    the observation, then sets ``q`` to give that Q. The voltage is each inverter's own
    bus. For the scalar env (it reads ``env.series`` and ``env.devices``).
    """

    def __init__(self, env: Any, curve: VoltVarCurve = CATEGORY_B, base: Policy | None = None,
                 damping: float = 0.4, max_iter: int = 60, tol_kvar: float = 0.01) -> None:
        from powergrid.core.params import CoreParams
        from powergrid.pf import FastSolver

        self.env, self.curve = env, curve
        self.base = RuleBasedPolicy(env) if base is None else base
        self.damping, self.max_iter, self.tol_kvar = damping, max_iter, tol_kvar
        net = env.network
        self._params = CoreParams.build(env.config, net, env.microgrid_agents)
        self._solver = FastSolver(net.net)
        bus_pos = {b: k for k, b in enumerate(net.net.bus.index)}
        # per inverter: agent, device index, index of its q component, element, row, bus
        self._inverters: list[tuple[str, int, int, str, int, int]] = []
        for a in env.microgrid_agents:
            k = 0
            for j, d in enumerate(env.devices(a)):
                k += d.action_dim
                element, row = net.device_rows[(a, d.name)]
                if d.reactive:
                    bus = net.net[element]["bus"].iat[row]
                    self._inverters.append((a, j, k - 1, element, row, bus_pos[bus]))
        self._series: Any = None
        self._t = 0
        self.iterations = 0  # of the last step's fixed point (0: no inverter, or PF failed)

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        actions = self.base(obs)
        if not self._inverters:
            return actions
        if self._series is not self.env.series:  # a new episode
            self._series, self._t = self.env.series, 0
        t = self._t
        self._t += 1
        q = self._droop(actions, t)
        for (a, _, k, *_), qk in zip(self._inverters, q):
            if a in actions:
                actions[a] = np.array(actions[a], np.float32)
                actions[a][k] = qk
        return actions

    def _droop(self, actions: dict[str, np.ndarray], t: int) -> list[float]:
        """The q components that put every inverter on its curve (0 if the flow fails)."""
        from powergrid.devices import StepContext
        from powergrid.devices.inverter import headroom_kvar, q_action

        env, s, p = self.env, self._series, self._params
        ctx = StepContext(hour=int(s.hours[t]), dt_hours=env.config.dt_hours,
                          pv_per_kw=float(s.pv_per_kw[t]))
        p_set = {"sgen": np.zeros(p.n_sgen), "storage": np.zeros(p.n_storage)}
        active: dict[tuple[str, int], float] = {}
        for a in env.microgrid_agents:
            k = 0
            for j, d in enumerate(env.devices(a)):
                act = np.asarray(actions[a], float)[k:k + d.action_dim]
                k += d.action_dim
                p_kw = copy.deepcopy(d).step(act, ctx)
                element, row = env.network.device_rows[(a, d.name)]
                p_set[element][row] = (-p_kw if element == "storage" else p_kw) * 1e-3
                active[(a, j)] = p_kw
        load_p = s.load_forecast_kw[t][p.load_owner] * p.load_share_mw
        if len(p.feeder_load_rows):
            pu = env.profiles.load("residential")[s.days[t], s.hours[t]]
            load_p[p.feeder_load_rows] = p.feeder_load_mw * pu
        devs = [env.devices(a)[j] for a, j, *_ in self._inverters]
        kva = np.array([d.s_kva for d in devs])
        p_kw = np.array([active[(a, j)] for a, j, *_ in self._inverters])
        room = np.array([headroom_kvar(sk, pk) for sk, pk in zip(kva, p_kw)])
        Q = np.zeros(len(devs))
        self._solver.reset()
        self.iterations = 0
        for it in range(1, self.max_iter + 1):
            q_set = {"sgen": np.zeros(p.n_sgen), "storage": np.zeros(p.n_storage)}
            for (_, _, _, element, row, _), qk in zip(self._inverters, Q):
                q_set[element][row] = (-qk if element == "storage" else qk) * 1e-3
            pf = self._solver.solve(load_p, load_p * p.load_q_ratio, p_set["sgen"],
                                    p_set["storage"], q_set["sgen"], q_set["storage"])
            if not pf.converged:
                return [0.0] * len(devs)
            v = pf.vm_pu[[inv[5] for inv in self._inverters]]
            target = np.clip(self.curve(v) * kva, -room, room)
            step = self.damping * (target - Q)
            Q = Q + step
            self.iterations = it
            if np.max(np.abs(step)) < self.tol_kvar:
                break
        return [q_action(float(sk), float(pk), float(qk)) for sk, pk, qk in zip(kva, p_kw, Q)]


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
