"""Text rendering of the last step: one row per microgrid, readable in a terminal or a log."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

HEADER = (f"{'agent':<8}{'load kW':>9}{'net kW':>9}{'sold':>8}{'bought':>8}{'import':>8}"
          f"{'export':>8}{'Vmin':>7}{'Vmax':>7}{'cost $':>9}")


def render_ansi(env: MultiAgentMicrogrids) -> str:
    infos = env._last_infos
    if not infos or not any(infos.values()):
        return f"day {getattr(env, 'start_day', '?')}: episode not started"
    first = next(iter(infos.values()))
    price = first["market"]["clearing_price"]
    price_txt = "-" if price is None else f"{price:.3f} $/kWh"
    lines = [f"day {first['day']} hour {first['hour']:02d}  clearing {price_txt}  "
             f"volume {first['market']['volume_kwh']:.1f} kWh  "
             f"retail {first['retail_price']:.3f}  feed-in {first['feed_in_price']:.3f}",
             HEADER]
    for a, inf in infos.items():
        m = inf["market"]
        lines.append(
            f"{a:<8}{inf['load_kw']:>9.1f}{inf['net_kw']:>9.1f}{m['sold_kwh']:>8.1f}"
            f"{m['bought_kwh']:>8.1f}{inf['grid_import_kwh']:>8.1f}{inf['grid_export_kwh']:>8.1f}"
            f"{inf['v_min_pu']:>7.3f}{inf['v_max_pu']:>7.3f}{inf['costs']['total']:>9.2f}")
    return "\n".join(lines)
