"""Static parameters of the simulation: everything fixed once the env is built."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powergrid.envs.config import EnvConfig
from powergrid.envs.safety import FailureRule
from powergrid.networks.multi_microgrid import MicrogridNetwork


@dataclass(frozen=True)
class CoreParams:
    """Config scalars and the network's index maps, in microgrid order (N agents)."""

    n_agents: int
    steps: int                      # max_episode_steps
    dt: float
    peak_kw: np.ndarray             # (N,)
    voltage_band: tuple[float, float]
    voltage_penalty_per_pu: float
    line_overload_penalty_per_pct: float
    storage_terminal_price: float
    share_reward: bool
    reactive: bool                  # inverters' q_kvar reaches the power flow
    failure: FailureRule
    # network maps (rows of the pandapower tables)
    n_load: int
    n_sgen: int
    n_storage: int
    load_owner: np.ndarray          # (n_load,) microgrid of each load row
    load_share_mw: np.ndarray       # (n_load,) MW per kW of its microgrid's load
    load_q_ratio: np.ndarray        # (n_load,)
    feeder_load_rows: np.ndarray    # the shared feeder's own (background) loads
    feeder_load_mw: np.ndarray
    feeder_buses: np.ndarray
    bus_rows: tuple[np.ndarray, ...]   # per microgrid
    line_rows: tuple[np.ndarray, ...]
    pcc_rows: np.ndarray            # (N,) trafo row of each microgrid's PCC transformer
    # (start, stop, offsets) of bus_rows / line_rows when they are adjacent blocks (one
    # reduceat then gives every feeder's extremes), else None
    bus_block: tuple[int, int, np.ndarray] | None
    line_block: tuple[int, int, np.ndarray] | None

    @classmethod
    def build(cls, cfg: EnvConfig, network: MicrogridNetwork, agents: list[str]) -> CoreParams:
        net = network.net
        owner = np.zeros(len(network.load_share), dtype=np.intp)
        for i, a in enumerate(agents):
            owner[network.load_rows[a]] = i
        return cls(
            n_agents=len(agents), steps=cfg.max_episode_steps, dt=float(cfg.dt_hours),
            peak_kw=np.array([m.peak_load_kw for m in cfg.microgrids], float),
            voltage_band=tuple(cfg.voltage_band),
            voltage_penalty_per_pu=float(cfg.voltage_penalty_per_pu),
            line_overload_penalty_per_pct=float(cfg.line_overload_penalty_per_pct),
            storage_terminal_price=float(cfg.storage_terminal_price),
            share_reward=bool(cfg.share_reward), reactive=bool(cfg.reactive_power),
            failure=FailureRule.build(cfg, network, agents),
            n_load=len(net.load), n_sgen=len(net.sgen), n_storage=len(net.storage),
            load_owner=owner, load_share_mw=network.load_share * 1e-3,
            load_q_ratio=network.load_q_ratio,
            feeder_load_rows=np.asarray(network.feeder_load_rows, np.intp),
            feeder_load_mw=net.load["p_mw"].to_numpy(float)[network.feeder_load_rows],
            feeder_buses=np.asarray(network.feeder_bus_rows, np.intp),
            bus_rows=tuple(np.asarray(network.bus_rows[a]) for a in agents),
            line_rows=tuple(np.asarray(network.line_rows[a]) for a in agents),
            pcc_rows=np.array([network.pcc_trafo_rows[a] for a in agents], np.intp),
            bus_block=_block([network.bus_rows[a] for a in agents]),
            line_block=_block([network.line_rows[a] for a in agents]),
        )


def _block(rows: list) -> tuple[int, int, np.ndarray] | None:
    """(start, stop, offsets) if ``rows`` are adjacent non-empty runs in order (feeders are
    built one after another), else None."""
    rows = [np.asarray(r, np.intp) for r in rows]
    if not rows or any(len(r) == 0 for r in rows):
        return None
    flat = np.concatenate(rows)
    if not np.array_equal(flat, np.arange(flat[0], flat[0] + len(flat))):
        return None
    offsets = np.cumsum([0, *(len(r) for r in rows[:-1])]).astype(np.intp)
    return int(flat[0]), int(flat[0]) + len(flat), offsets
