"""One-line diagram of the shared IEEE-34 feeder, buses coloured by voltage at one hour.

Runs the scenario ``p2p-3mg-v2`` under the rule-based policy up to the given hour, on the
pandapower backend (whose solved ``net.res_bus`` holds every bus voltage), and draws every
bus (IEEE-34 and the microgrids' IEEE-13 buses), lines and transformers (PCC transformers
thick). Writes ``docs/img/ieee34_voltage.png``, and the
whole day's ``powergrid.viz.plot_episode`` (violations marked) to
``docs/img/ieee34_episode.png``.

    PYTHONPATH=. python benchmarks/feeder_figure.py --day 244 --hour 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

import powergrid  # noqa: E402
from powergrid.baselines import RuleBasedPolicy, run_episode  # noqa: E402
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids  # noqa: E402
from powergrid.viz import plot_episode  # noqa: E402


def solved_env(day: int, hour: int) -> tuple[MultiAgentMicrogrids, dict[str, dict]]:
    """The env after ``hour + 1`` rule-based steps of ``day``, and that last step's infos."""
    env = powergrid.make("p2p-3mg-v2", max_episode_steps=hour + 1, split=None,
                         power_flow="pandapower")
    policy = RuleBasedPolicy(env)
    obs, _ = env.reset(seed=0, options={"start_day": day})
    infos: dict[str, dict] = {}
    while env.agents:
        obs, _, _, _, infos = env.step(policy(obs))
    return env, infos


def draw(env: MultiAgentMicrogrids, path: Path, title: str) -> None:
    net = env.network.net
    # the pandapower backend's solved copy of the net: the last step's bus voltages
    vm = env.solver.net.res_bus["vm_pu"].reindex(net.bus.index).to_numpy()
    pos_of = {b: k for k, b in enumerate(net.bus.index)}
    g = nx.Graph()
    g.add_nodes_from(range(len(net.bus)))
    for df in (net.line, net.trafo):
        f, t = ("from_bus", "to_bus") if df is net.line else ("hv_bus", "lv_bus")
        g.add_edges_from((pos_of[a], pos_of[b]) for a, b in zip(df[f], df[t]))
    xy = nx.kamada_kawai_layout(g)
    pcc = {(pos_of[net.trafo.hv_bus.iloc[r]], pos_of[net.trafo.lv_bus.iloc[r]])
           for r in env.network.pcc_trafo_rows.values()}
    fig, ax = plt.subplots(figsize=(9, 7))
    nx.draw_networkx_edges(g, xy, ax=ax, edge_color="0.6", width=1.0)
    nx.draw_networkx_edges(g, xy, edgelist=list(pcc), ax=ax, edge_color="k", width=3.5)
    lo, hi = env.config.voltage_band
    nodes = nx.draw_networkx_nodes(g, xy, ax=ax, node_size=45, node_color=vm, cmap="coolwarm",
                                   vmin=lo - 0.03, vmax=hi + 0.03)
    out = np.flatnonzero((vm < lo) | (vm > hi))
    ax.scatter([xy[k][0] for k in out], [xy[k][1] for k in out], s=160, facecolors="none",
               edgecolors="k", linewidths=0.8, label="outside 0.95-1.05 pu")
    names = net.bus["name"].tolist()
    for k, name in enumerate(names):
        short = name.split(".", 1)[1]
        if name.startswith("IEEE34.") and short in ("800", "814", "850", "852", "832", "858",
                                                    "834", "848", "890"):
            ax.annotate(short, xy[k], xytext=(4, 4), textcoords="offset points", fontsize=8)
        elif short == "650":
            ax.annotate(name.split(".")[0], xy[k], xytext=(-30, -14), textcoords="offset points",
                        fontsize=9, weight="bold")
    fig.colorbar(nodes, ax=ax, label="voltage (pu)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--day", type=int, default=244, help="a test day of p2p-3mg-v2")
    ap.add_argument("--hour", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("docs/img/ieee34_voltage.png"))
    ap.add_argument("--episode-out", type=Path, default=Path("docs/img/ieee34_episode.png"))
    args = ap.parse_args()
    env, infos = solved_env(args.day, args.hour)
    info = infos["MG1"]
    title = (f"IEEE-34 + 3 IEEE-13 microgrids, rule-based, day {args.day} hour {args.hour}: "
             f"feeder {info['feeder_v_min_pu']:.3f}-{info['feeder_v_max_pu']:.3f} pu, "
             f"max PCC {info['pcc_loading_max_pct']:.0f} %")
    draw(env, args.out, title)
    print(f"wrote {args.out}")
    day = powergrid.make("p2p-3mg-v2", split=None)
    _, history = run_episode(day, RuleBasedPolicy(day), seed=0, options={"start_day": args.day})
    plot_episode(history, args.episode_out, env=day)
    print(f"wrote {args.episode_out}")


if __name__ == "__main__":
    main()
