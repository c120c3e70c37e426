"""Example 04 - a custom device: an EV charger on MG2 with its own action and cost."""
from __future__ import annotations

import argparse
import dataclasses

from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.devices import DeviceParams, PowerDevice
from powergrid.envs.config import default_microgrids
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


@dataclasses.dataclass(frozen=True)
class EVChargerParams(DeviceParams):
    """Energy still missing at departure costs ``unmet_cost_per_kwh`` ("other_devices")."""
    name: str = "ev"
    bus: str = "675"
    p_max_kw: float = 150.0
    energy_kwh: float = 600.0
    departure_hour: int = 7
    unmet_cost_per_kwh: float = 0.5
    def build(self) -> EVCharger:
        return EVCharger(self)


class EVCharger(PowerDevice):
    """Action -1..1 -> charge at 0..p_max_kw until departure (a consumption: p_kw <= 0)."""
    action_labels, obs_labels = ("charge",), ("ev_remaining",)
    def __init__(self, params: EVChargerParams) -> None:
        super().__init__(params.name, params.bus)
        self.params = params
    def reset(self, rng) -> None:
        self.remaining, self.p_kw, self.cost, self.clipped = self.params.energy_kwh, 0.0, 0.0, False
    def step(self, action, ctx) -> float:
        p, want = self.params, (float(action[0]) + 1.0) / 2.0 * self.params.p_max_kw
        power = min(want, self.remaining / ctx.dt_hours) if ctx.hour < p.departure_hour else 0.0
        self.clipped, self.remaining, self.p_kw = power != want, self.remaining - power * ctx.dt_hours, -power
        self.cost = p.unmet_cost_per_kwh * self.remaining if ctx.hour == p.departure_hour - 1 else 0.0
        return self.p_kw
    def observe(self) -> tuple[float, ...]:
        return (self.remaining / self.params.energy_kwh,)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=24)
    mg1, mg2 = default_microgrids()
    mg2 = dataclasses.replace(mg2, devices=(*mg2.devices, EVChargerParams()))
    env = MultiAgentMicrogrids(microgrids=[mg1, mg2], start_day=172,
                               max_episode_steps=parser.parse_args(argv).steps)
    rule, k = RuleBasedPolicy(env), env.action_labels["MG2"].index("ev.charge")

    def asap(obs: dict) -> dict:  # the rule policy, but the EV charges at full power
        acts = rule(obs)
        acts["MG2"][k] = 1.0
        return acts
    for name, policy in (("rule policy", rule), ("charge ASAP", asap)):
        costs, hist = run_episode(env, policy, seed=0)
        ev = sum(h["MG2"]["costs"]["other_devices"] for h in hist)
        print(f"{name:12s} MG2 cost {costs['MG2']:8.2f} $ (EV unmet-energy cost {ev:.2f} $)")


if __name__ == "__main__":
    main()
