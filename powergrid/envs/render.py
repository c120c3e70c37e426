"""Text rendering of the last step: one row per microgrid, readable in a terminal or a log."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

HEADER = (f"{'agent':<8}{'load kW':>9}{'net kW':>9}{'sold':>8}{'bought':>8}{'import':>8}"
          f"{'export':>8}{'Vmin':>7}{'Vmax':>7}{'cost $':>9}  devices")


def render_ansi(env: MultiAgentMicrogrids) -> str:
    """The last step as a small table; every agent id appears even before the first step.

    Energies (sold, bought, import, export) are kWh in the step, voltages pu, cost $.
    The devices column shows each device's power in kW (ESS: + discharge, with its SOC;
    PV: used/available).
    """
    infos = env.last_infos
    if not infos or not any(infos.values()):
        agents = ", ".join(env.agents or env.possible_agents)
        return (f"day {getattr(env, 'start_day', '?')}: episode not started "
                f"(agents: {agents})")
    first = next(iter(infos.values()))
    price = first["market"]["clearing_price"]
    no_price = price is None or (isinstance(price, float) and math.isnan(price))
    price_txt = "-" if no_price else f"{price:.3f} $/kWh"
    lines = [f"day {first['day']} hour {first['hour']:02d}  clearing {price_txt}  "
             f"volume {first['market']['volume_kwh']:.1f} kWh  "
             f"retail {first['retail_price']:.3f}  feed-in {first['feed_in_price']:.3f}",
             HEADER]
    for a, inf in infos.items():
        if "market" not in inf:  # an operator agent (DSO): one line with its price
            lines.append(f"{a:<8}price signal {inf.get('vertical', {}).get('price', math.nan):.3f}"
                         f" $/kWh, next {inf.get('next_price', math.nan):.3f} $/kWh")
            continue
        m = inf["market"]
        flags = "" if inf.get("pf_converged", True) else "  PF NOT CONVERGED"
        lines.append(
            f"{a:<8}{inf['load_kw']:>9.1f}{inf['net_kw']:>9.1f}{m['sold_kwh']:>8.1f}"
            f"{m['bought_kwh']:>8.1f}{inf['grid_import_kwh']:>8.1f}{inf['grid_export_kwh']:>8.1f}"
            f"{inf['v_min_pu']:>7.3f}{inf['v_max_pu']:>7.3f}{inf['costs']['total']:>9.2f}  "
            f"{_devices(inf.get('devices', {}))}{flags}")
    return "\n".join(lines)


def _devices(devices: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for name, d in devices.items():
        if "soc" in d:
            parts.append(f"{name} {d['p_kw']:+.0f} (SOC {100 * d['soc']:.0f}%)")
        elif "available_kw" in d:
            parts.append(f"{name} {d['p_kw']:.0f}/{d['available_kw']:.0f}")
        else:
            parts.append(f"{name} {d['p_kw']:.0f}")
    return ", ".join(parts)
