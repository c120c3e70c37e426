"""ONE step pipeline over (params, state, actions) for B envs at once.

dispatch -> orders -> clearing -> settlement -> power flow -> safety -> network costs ->
costs -> observations. Each stage is a method over (B, ...) arrays; a stage that cannot be
batched (custom devices, protocols, the broker, pandapower) runs per row through the
objects the scalar env uses (:class:`~powergrid.devices.batched.PerRowDevices`, one
``Coordination`` per row, :class:`~powergrid.core.powerflow.RowPowerFlow`), so every
configuration runs in the batch. A new stage or cost term is one method plus one row in
``powergrid.core.layout.COST_TERMS``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from heron.market import Order
from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.core import ahead as ahead_market
from powergrid.core.kernel import FusedStep
from powergrid.core.layout import COMMON_LABELS, DEVICE_COSTS, common_features, cost_total
from powergrid.core.market import (
    MarketResult,
    clear_batch,
    clear_compiled,
    compiled_clearing,
    row_orders,
    settle_rows,
)
from powergrid.core.params import CoreParams
from powergrid.core.powerflow import make_batch_power_flow
from powergrid.core.state import CoreState, live_rows
from powergrid.core.storage import storage_terminal, stored_kwh
from powergrid.devices import ESS
from powergrid.devices.batched import BatchContext, BatchedDevice, batched
from powergrid.envs.coordination import DSO, DSO_OBS, Coordination, StepNeeds
from powergrid.envs.safety import LOADING_CEIL_PCT, V_CEIL_PU, V_FLOOR_PU
from powergrid.envs.series import SeriesPlanner, price_band
from powergrid.network_costs import NETWORK_COST_TERMS, NETWORK_DSO_KEYS

if TYPE_CHECKING:
    from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

# The scalar env computes sin/cos of the hour with math; tabulating the same expression keeps
# the float32 observations bit-identical.
HOUR_SIN = np.array([math.sin(2 * math.pi * h / 24) for h in range(24)])
HOUR_COS = np.array([math.cos(2 * math.pi * h / 24) for h in range(24)])


def check_finite(agent: str, devices: Sequence[BatchedDevice]) -> None:
    """Stop before a device's NaN/inf power or cost reaches money (as the scalar env)."""
    for d in devices:
        for what in ("p_kw", "cost"):
            values = getattr(d, what)
            if not np.isfinite(values).all():
                bad = values[~np.isfinite(values)][0]
                raise ValueError(
                    f"device {d.name!r} of agent {agent!r} returned {what}={float(bad)!r} from "
                    f"step(); a device must give finite power (kW) and cost ($)")


def grid_exchange(net_kw: np.ndarray, dt: float, bought: np.ndarray,
                  sold: np.ndarray) -> np.ndarray:
    """(B, N) kWh exchanged with the grid after trading: > 0 export, < 0 import."""
    return net_kw * dt - sold + bought


def tariff_costs(tariff_kwh: np.ndarray, retail: np.ndarray,
                 feed_in: np.ndarray) -> dict[str, np.ndarray]:
    """``grid_import`` / ``grid_export_revenue`` of (B, N) kWh settled at the (B,) tariff."""
    return {"grid_import": np.maximum(-tariff_kwh, 0.0) * retail[:, None],
            "grid_export_revenue": np.maximum(tariff_kwh, 0.0) * feed_in[:, None]}


@dataclass
class SafetyMetrics:
    """The safety stage's infos: (B, N) per agent, (B,) shared."""

    per_agent: dict[str, np.ndarray]
    shared: dict[str, np.ndarray]


@dataclass
class StepOutput:
    """One step of B envs: (B, N) per-agent arrays, (B,) shared ones (read-only mappings:
    the compiled step gives ``powergrid.core.rows.RowTable`` views of its output rows)."""

    costs: Mapping[str, np.ndarray]
    total: np.ndarray
    rewards: np.ndarray            # (B, N), after share_reward
    per_agent: Mapping[str, np.ndarray]
    shared: Mapping[str, np.ndarray]
    dso_reward: np.ndarray | None  # (B,) with a learning operator
    dso_info: dict[str, np.ndarray] | None
    market: MarketResult | None = None  # the real-time clearing (per-row results, orders)


class Simulation:
    """Parameters, state and stage objects of B envs built like ``template``."""

    def __init__(self, template: MultiAgentMicrogrids, num_envs: int, fused: bool = True,
                 row_market: bool = False, coords: Sequence[Coordination] | None = None,
                 devices: Sequence[Sequence[BatchedDevice]] | None = None,
                 share_solver: bool = False) -> None:
        """``template``'s public configuration (config, network, solver, protocols, tariffs,
        ``days_split``, ``network_costs``, ``coordination``) for ``num_envs`` rows.

        ``row_market``: every row clears through its own Coordination (the ``results`` /
        ``orders`` of :class:`MarketResult` are filled), never on the batched books.
        ``coords`` (one per row) and ``devices`` (per agent, ``num_envs`` rows each) replace
        the copies built from the template: the scalar env passes its own Coordination and
        its own objects as row 0, so protocol and broker state stay one object.
        ``share_solver`` (B = 1): a per-row solver (pandapower) is the template's own, so
        its solved network (``solver.net.res_*``) shows the env's last step.
        """
        cfg, net = template.config, template.network
        self.B = B = num_envs
        self.agents = template.microgrid_agents
        self.params = p = CoreParams.build(cfg, net, self.agents)
        self.config, self.profiles = cfg, template.profiles
        self._retail_price, self.feed_in_price = template.retail_price, template.feed_in_price
        self._days_split = template.days_split
        self.devices = ([list(devs) for devs in devices] if devices is not None
                        else [[batched(d, B) for d in template.devices(a)] for a in self.agents])
        #: each device's cost bucket (DEVICE_COSTS index) and power-flow (element, row)
        self.cost_buckets = [[DEVICE_COSTS.index(d.cost_term) for d in devs]
                             for devs in self.devices]
        self.device_rows = [[net.device_rows[(a, d.name)] for d in template.devices(a)]
                            for a in self.agents]
        self._ess = [[bd for bd, d in zip(devs, template.devices(a)) if isinstance(d, ESS)]
                     for a, devs in zip(self.agents, self.devices)]
        self._soc_bounds = [[(d.params.soc_min - 1e-9, d.params.soc_max + 1e-9)
                             for d in template.devices(a) if isinstance(d, ESS)]
                            for a in self.agents]
        # network costs linearise each row's solved state (powergrid.network_costs)
        nc = template.network_costs
        self.network_costs = nc if nc is not None and nc.settings.network_costs else None
        self.pf = make_batch_power_flow(
            template.solver, B, voltages=self.network_costs is not None,
            model=None if nc is None else nc.costs.sens.model, share=share_solver)
        proto = template.protocol
        self.fee = 0.0 if proto is None else float(proto.fee_per_unit)
        self.rule = None if proto is None else getattr(proto, "clearing_rule", None)
        self.has_market = proto is not None
        # pair-dependent fees clear per row (the batched books take one fee per unit here);
        # row_market: every row clears through its own Coordination (Order/Trade lists)
        self.batch_market = (proto is not None and type(proto) is P2PTradingProtocol
                             and not row_market
                             and cfg.centralized and hasattr(self.rule, "clear_batch")
                             and getattr(proto, "pair_fee", None) is None)
        # one Coordination per row wherever a protocol or the broker is involved
        needs_rows = (template.vertical_protocol is not None or not cfg.centralized
                      or (proto is not None and not self.batch_market))
        self.coords: list[Coordination] | None = None
        if needs_rows and coords is not None:
            self.coords = list(coords)
        elif needs_rows:
            self.coords = []
            for _ in range(B):
                h, v = copy.deepcopy(proto), copy.deepcopy(template.vertical_protocol)
                self.coords.append(Coordination(cfg, h, v, self.agents, p.peak_kw.tolist()))
        if self.coords is not None and len(self.coords) != B:
            raise ValueError(f"coords: {len(self.coords)} Coordination objects for {B} rows")
        if any(len(devs) != len(template.devices(a)) or any(d.num_envs != B for d in devs)
               for devs, a in zip(self.devices, self.agents)):
            raise ValueError(f"devices: expected each agent's devices with num_envs={B}")
        self.has_dso = template.coordination.has_dso
        self.extra_obs = len(template.coordination.extra_obs)
        self.state = CoreState.empty(B, p.n_agents, p.steps)
        self.ahead = ahead_market.AheadParams.build(cfg)
        if self.ahead is not None:
            self.state.ahead = ahead_market.AheadState.empty(B, p.n_agents, p.steps, self.ahead)
        self._arange = np.arange(B)
        # the compiled step when every stage compiles (powergrid.core.kernel), else None
        self.kernel = FusedStep.build(self) if fused else None

    # ------------------------------------------------------------------ reset
    @cached_property
    def series_planner(self) -> SeriesPlanner:
        """The episode series' constants and per-start-day tables, built at the first reset."""
        return SeriesPlanner(self.config, self.profiles, self._retail_price, self.feed_in_price,
                             self.config.microgrids)

    def reset_rows(self, mask: np.ndarray, rngs: Sequence[np.random.Generator],
                   start_days: Sequence[int | None], split: str | None,
                   seeds: Sequence[int | None]) -> None:
        """New episodes in the masked rows, drawing from each row's RNG as the scalar env
        (start day, device resets, load noise), then the coordination's reset."""
        p, s = self.params, self.state
        rows = np.flatnonzero(mask)
        if not len(rows):
            return
        days, noise = self._draw_rows(rows, rngs, start_days, split)
        for devs in self.devices:
            for d in devs:
                if d.compiled:
                    d.reset(mask)
        self.pf.reset(mask)
        ser = self.series_planner.series(days, noise)
        at = slice(None) if len(rows) == self.B else rows  # a slice writes faster
        s.t[at], s.start_day[at] = 0, days
        s.hours[at], s.days[at], s.pv[at] = ser.hours, ser.days, ser.pv_per_kw
        s.retail[at], s.feed_in[at] = ser.retail, ser.feed_in
        s.load_forecast[at], s.load_kw[at] = ser.load_forecast_kw, ser.load_kw
        s.feeder_load_pu[at] = self.profiles.load("residential")[ser.days, ser.hours]
        s.last_price[at], s.last_p2p[at], s.last_grid[at] = 0.0, 0.0, 0.0
        s.v_min[at], s.v_max[at], s.last_losses_kw[at] = 1.0, 1.0, 0.0
        s.last_pcc[at] = 0.0
        s.needs_reset[at] = False
        s.stored_start[at] = self.stored_kwh()[at]
        if self.ahead is not None:  # forecasts follow the load noise in each row's RNG
            s.ahead.reset_rows(rows)
            z = np.stack([ahead_market.forecast_normals(self.ahead, p.steps, rngs[b])
                          for b in rows])
            s.ahead.load_fc[rows], s.ahead.pv_fc[rows] = ahead_market.forecasts(
                self.ahead, ser.load_kw, ser.pv_per_kw, z)
        if self.coords is not None:
            for b in rows:
                c = self.coords[b]
                if c.vertical is not None:
                    c.vertical.reset()
                c.reset(seeds[b], s.hours[b].tolist(), s.retail[b], s.feed_in[b])

    def _draw_rows(self, rows: np.ndarray, rngs: Sequence[np.random.Generator],
                   start_days: Sequence[int | None], split: str | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Start days (R,) and load noise (R, T+1, N) of ``rows``: the only per-row work of a
        reset, since each row's RNG must be consumed in the scalar env's order (start day,
        custom devices' resets, load noise)."""
        p = self.params
        days, noise = np.empty(len(rows), int), np.empty((len(rows), p.steps + 1, p.n_agents))
        row_devices = [d for devs in self.devices for d in devs if not d.compiled]
        draw = self._days_split.draw
        for k, b in enumerate(rows):
            rng, day = rngs[b], start_days[b]
            days[k] = draw(rng, split) if day is None else day
            for d in row_devices:  # a custom device may draw from the env's RNG
                d.reset(self._arange == b, rngs)
            rng.standard_normal(out=noise[k])
        return days, noise

    def stored_kwh(self) -> np.ndarray:
        """(B, N) energy held in each microgrid's storage, kWh."""
        out = np.empty((self.B, len(self._ess)))
        for i, v in enumerate(stored_kwh(self._ess)):
            out[:, i] = v
        return out

    # ------------------------------------------------------------------ step
    def step(self, acts: Sequence[np.ndarray], live: np.ndarray) -> StepOutput:
        """Advance the live rows by one step; ``acts`` (B, act_dim) per possible agent."""
        if self.kernel is not None:
            if self.kernel.fused:
                return self.kernel.step(acts, live)
            clearing = self._plain_rows(live)
            if clearing is not None:
                return self.kernel.step_rows(acts, live, self.agents, clearing)
            return self._step_compiled(acts, live)
        p, s, N = self.params, self.state, self.params.n_agents
        t, r = s.t, self._arange
        retail, feed_in = self._tariff(live)
        load_kw = s.load_kw[r, t]
        net_kw, dev_cost, limited, sgen, storage = self._dispatch(acts, live, load_kw)
        settled = None
        if self.ahead is None:
            market = self._market(acts, net_kw, retail, feed_in, live)
        else:  # deliver the commitment due now, then clear the gate of the next step
            market, settled = ahead_market.deliver(s.ahead, self.ahead, net_kw * p.dt,
                                                   retail, feed_in)
            market.orders = self._trade_ahead(acts, live)
        exchange = grid_exchange(net_kw, p.dt, market.bought, market.sold)
        tracking, dso_reward, dso_info = self._settle(exchange, net_kw, acts, live)
        pf = self._power_flow(load_kw, sgen, storage, live)
        penalty, converged, upstream_kw, losses_kw, safety = self._safety(pf, net_kw, load_kw)
        network_terms, network_info = self._network_costs(pf, converged, retail, live)
        grid_export, grid_import = np.maximum(exchange, 0.0), np.maximum(-exchange, 0.0)
        # at the tariff: everything, or (ahead) the residual beyond the imbalance volumes
        tariff_kwh = exchange if settled is None else settled.residual
        costs = {
            "generation": dev_cost[0], "degradation": dev_cost[1], "other_devices": dev_cost[2],
            **tariff_costs(tariff_kwh, retail, feed_in),
            "p2p_payment": market.paid, "p2p_revenue": market.received, "fees": market.fees,
            "safety_penalty": penalty, "tracking_penalty": tracking,
            "storage_terminal": self._storage_terminal(t + 1 >= p.steps),
            **network_terms,
        }
        if settled is not None:
            costs["imbalance"] = settled.imbalance_cost
        total = cost_total(costs)
        rewards = -total
        if p.share_reward:
            rewards = np.repeat(rewards.sum(axis=1, keepdims=True), N, axis=1)
        s.last_price = np.where(np.isnan(market.price), 0.0, market.price)
        s.last_p2p, s.last_grid = market.sold - market.bought, exchange
        s.t = np.where(live, t + 1, t)
        s.needs_reset = s.needs_reset | (live & (s.t >= p.steps))
        per_agent = {"grid_import_kwh": grid_import, "grid_export_kwh": grid_export,
                     "bought_kwh": market.bought, "sold_kwh": market.sold, "net_kw": net_kw,
                     "load_kw": load_kw, "v_min_pu": s.v_min.copy(), "v_max_pu": s.v_max.copy(),
                     "device_limited": limited, **safety.per_agent,
                     **{f"costs/{k}": v for k, v in costs.items()}, "costs/total": total}
        if settled is not None:
            per_agent |= {"shortfall_kwh": settled.shortfall, "excess_kwh": settled.excess}
        shared = {"clearing_price": market.price, "pf_converged": converged,
                  "upstream_import_kw": upstream_kw, "network_losses_kw": losses_kw,
                  **safety.shared, **network_info}
        return StepOutput(costs, total, rewards, per_agent, shared, dso_reward, dso_info,
                          market)

    def _step_compiled(self, acts: Sequence[np.ndarray], live: np.ndarray) -> StepOutput:
        """The compiled stages (``powergrid.core.kernel``) with the Python stages of this
        class between them: the tariff signal, per-row or ahead clearing, the
        coordination's settlement, network costs. The coordination settles after the
        power flow here (neither reads the other)."""
        p, s, k = self.params, self.state, self.kernel
        assert k is not None
        retail, feed_in = self._tariff(live)
        net_kw = k.dispatch(acts)
        market = settled = None
        if self.ahead is not None:  # deliver the commitment due now, clear the next gate
            market, settled = ahead_market.deliver(s.ahead, self.ahead, net_kw * p.dt,
                                                   retail, feed_in)
            market.orders = self._trade_ahead(acts, live)
        elif self.has_market and not k.clears:
            market = self._market(acts, net_kw, retail, feed_in, live)
        if market is not None:
            k.book(market)
        pf = k.grid(retail, feed_in)
        terms: dict[str, np.ndarray] = {}
        dso_reward = dso_info = None
        if self.coords is not None and self._coord_needs.settle:  # else nothing to settle
            bought, sold = k.traded()
            exchange = grid_exchange(net_kw, p.dt, bought, sold)
            terms["tracking_penalty"], dso_reward, dso_info = self._settle(exchange, net_kw,
                                                                           acts, live)
        per_agent: dict[str, np.ndarray] = {}
        if settled is not None:  # the tariff on the residual beyond the imbalance volumes
            terms.update(tariff_costs(settled.residual, retail, feed_in),
                         imbalance=settled.imbalance_cost)
            per_agent = {"shortfall_kwh": settled.shortfall, "excess_kwh": settled.excess}
        network_info: dict[str, np.ndarray] = {}
        if self.network_costs is None:
            k.book_costs(terms)
            k.finish(live)
        else:  # network costs linearise the solved state of rows safety admitted
            k.check()
            network_terms, network_info = self._network_costs(pf, pf.converged, retail, live)
            k.book_costs({**terms, **network_terms})
            k.close(live)
        return k.output(per_agent, network_info, dso_reward, dso_info, market)

    @cached_property
    def _rows_may_be_plain(self) -> bool:
        """Rows clear through their Coordinations, which need nothing else per step and no
        Python stage follows: the whole step compiles whenever each row's market is the
        plain built-in case (:meth:`_plain_rows`; the scalar env's default set-up)."""
        needs = self._coord_needs
        return (self.kernel is not None and self.coords is not None and self.has_market
                and self.ahead is None and self.network_costs is None
                and not self.pf.voltages and not needs.signal and not needs.settle)

    def _plain_rows(self, live: np.ndarray) -> tuple[int, float, float] | None:
        """``(code, k, fee)`` when every row's Coordination clears exactly as that compiled
        kernel (``compiled_clearing``, checked every step: protocols are mutable), else
        None; then each live row's tariff is recorded as :meth:`_tariff` does."""
        if not self._rows_may_be_plain:
            return None
        clearing = None
        for c in self.coords:  # type: ignore[union-attr]
            spec = compiled_clearing(c)
            if spec is None:
                return None
            row = (*spec, float(c.horizontal.fee_per_unit))  # type: ignore[union-attr]
            if clearing is None:
                clearing = row
            elif row != clearing:
                return None
        s = self.state
        t = s.t.tolist()
        for b in live_rows(live):  # nothing else of the tariff stage is needed
            self.coords[b].tariff(t[b], float(s.retail[b, t[b]]),  # type: ignore[index]
                                  float(s.feed_in[b, t[b]]))
        return clearing

    def _tariff(self, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Import/export price per row: the tariff, or the operator's signal (per row)."""
        s, r = self.state, self._arange
        retail, feed_in = s.retail[r, s.t], s.feed_in[r, s.t]
        if self.coords is None:
            return retail, feed_in
        t, prices, exports = s.t.tolist(), retail.tolist(), feed_in.tolist()
        for b in live_rows(live):  # each row's tariff_now (infos), its signal if it has one
            prices[b], exports[b] = self.coords[b].tariff(t[b], prices[b], exports[b])
        if not self._coord_needs.signal:  # no row has a signal: the tariff itself
            return retail, feed_in
        return np.array(prices), np.array(exports)

    @cached_property
    def _coord_needs(self) -> StepNeeds:
        """The per-step coordination work some row needs (none in the default set-up)."""
        return StepNeeds.any(c.needs for c in self.coords or ())

    def _dispatch(self, acts, live, load_kw):
        """Devices apply their actions: net kW (B, N), cost buckets (3, B, N), limit flags,
        and the power-flow set-points of every sgen/storage row: (p,) or, with reactive
        power, (p, q) MW/Mvar in pandapower's signs."""
        p, s, B = self.params, self.state, self.B
        r = self._arange
        pv, hours = s.pv[r, s.t], s.hours[r, s.t]
        net_kw = np.empty((B, p.n_agents))
        dev_cost = np.zeros((3, B, p.n_agents))
        limited = np.zeros((B, p.n_agents), bool)
        sgen_p, storage_p = np.zeros((B, p.n_sgen)), np.zeros((B, p.n_storage))
        ctx = BatchContext(hour=hours, dt_hours=p.dt, pv_per_kw=pv, live=live)
        sgen_q, storage_q = (np.zeros((B, p.n_sgen)), np.zeros((B, p.n_storage))
                             ) if p.reactive else (None, None)
        for i, devs in enumerate(self.devices):
            out, k = 0.0, 0
            for d, bucket, (element, row) in zip(devs, self.cost_buckets[i],
                                                 self.device_rows[i]):
                power = d.step(acts[i][:, k:k + d.action_dim], ctx)
                k += d.action_dim
                out = out + power
                dev_cost[bucket, :, i] += d.cost
                limited[:, i] |= d.clipped
                if element == "storage":
                    storage_p[:, row] = -d.p_kw * 1e-3  # pandapower storage: + = charging
                    if p.reactive:
                        storage_q[:, row] = -d.q_kvar * 1e-3  # and + = consuming
                else:
                    sgen_p[:, row] = d.p_kw * 1e-3
                    if p.reactive:
                        sgen_q[:, row] = d.q_kvar * 1e-3
            if not all(d.compiled for d in devs):
                check_finite(self.agents[i], devs)
            net_kw[:, i] = out - load_kw[:, i]
        if p.reactive:
            return net_kw, dev_cost, limited, (sgen_p, sgen_q), (storage_p, storage_q)
        return net_kw, dev_cost, limited, (sgen_p,), (storage_p,)

    def _market(self, acts, net_kw, retail, feed_in, live) -> MarketResult:
        p, B = self.params, self.B
        if not self.has_market:
            return MarketResult.none(B, p.n_agents)
        if self.batch_market:
            price_acts = np.stack([acts[i][:, -1] for i in range(p.n_agents)], 1)
            low, high = price_band(feed_in[:, None], retail[:, None], self.fee)
            return clear_batch(self.rule, self.fee, net_kw, price_acts, low, high, p.dt)
        # per row, on Python floats (at B = 1, the scalar env, numpy calls are overhead)
        results, orders = [None] * B, [[] for _ in range(B)]
        retail, feed_in, net = retail.tolist(), feed_in.tolist(), net_kw.tolist()
        price_acts = [a[:, -1].tolist() for a in acts[:p.n_agents]]
        for b in live_rows(live):
            c = self.coords[b]
            bands = [c.band(a, feed_in[b], retail[b]) for a in self.agents]
            orders[b] = row_orders(self.agents, net[b], [x[b] for x in price_acts], bands,
                                   p.dt)
            spec = compiled_clearing(c)  # the plain built-in case: the same, compiled
            results[b] = (c.clear(orders[b]) if spec is None
                          else clear_compiled(spec, orders[b], c.horizontal.fee_per_unit))
        return settle_rows(self.agents, results, orders)

    def _trade_ahead(self, acts, live) -> list[list[Order]] | None:
        """Orders for delivery t + k from the market components; clear the gate of t + 1.
        Per row, the orders placed (row clearing), else None."""
        p, s, ap = self.params, self.state, self.ahead
        n_market = 1 + ap.levels
        market_acts = np.stack([acts[i][:, -n_market:] for i in range(p.n_agents)], 1)
        retail_d, feed_in_d = ahead_market.delivery_tariff(s.retail, s.feed_in, s.t, ap.lead)
        if self.batch_market:
            low, high = price_band(feed_in_d[:, None], retail_d[:, None], self.fee)
            low, high = (np.broadcast_to(x, (self.B, p.n_agents)) for x in (low, high))
            ahead_market.trade_batch(s.ahead, ap, self.rule, self.fee, s.t, p.steps,
                                     market_acts, low, high, live)
            return None
        return ahead_market.trade_rows(s.ahead, ap, self.agents, self.coords, s.t, p.steps,
                                    market_acts, retail_d, feed_in_d, live)

    def _settle(self, exchange, net_kw, acts, live):
        """Coordination's settlement per row: tracking penalties, the operator's reward."""
        B, N = self.B, self.params.n_agents
        tracking = np.zeros((B, N))
        if self.coords is None or not self._coord_needs.settle:  # nothing to settle
            return tracking, None, None
        dso_act = acts[N] if self.has_dso else None
        dso_reward = np.zeros(B) if self.has_dso else None
        dso_info = ({"aggregate_exchange": np.zeros(B), "next_price": np.zeros(B)}
                    if self.has_dso else None)
        for b in live_rows(live):
            c = self.coords[b]
            tracking[b] = c.settle(exchange[b], net_kw[b] * self.params.dt,
                                   None if dso_act is None else dso_act[b])
            if self.has_dso:
                infos: dict[str, Any] = {a: {"market": {}} for a in self.agents}
                rewards: dict[str, float] = {}
                c.annotate(infos, rewards)
                dso_reward[b] = rewards[DSO]
                dso_info["aggregate_exchange"][b] = infos[DSO]["aggregate_exchange"]
                dso_info["next_price"][b] = infos[DSO]["next_price"]
        return tracking, dso_reward, dso_info

    def _power_flow(self, load_kw, sgen, storage, live):
        p, s = self.params, self.state
        load_p = load_kw[:, p.load_owner] * p.load_share_mw
        if len(p.feeder_load_rows):
            load_p[:, p.feeder_load_rows] = (p.feeder_load_mw
                                             * s.feeder_load_pu[self._arange, s.t][:, None])
        q = (sgen[1], storage[1]) if p.reactive else (None, None)
        return self.pf.solve(load_p, load_p * p.load_q_ratio, sgen[0], storage[0], live, *q)

    def _safety(self, pf, net_kw, load_kw):
        """Per-agent penalty (B, N), converged (B,), upstream import and losses (B,) in kW;
        updates v_min/v_max. Failed rows follow ``powergrid.envs.safety``."""
        p, s = self.params, self.state
        lo, hi = p.voltage_band
        s.v_min, s.v_max, l_max = self._feeder_extremes(pf)
        penalty, v_violation = np.zeros((self.B, p.n_agents)), np.zeros((self.B, p.n_agents))
        # violations are rare: sum them only for the feeders that have one somewhere
        out = (s.v_min < lo) | (s.v_max > hi) | (l_max > 100.0)
        for i in np.flatnonzero(out.any(0)):
            vm, ld = pf.vm_pu[:, p.bus_rows[i]], pf.line_loading[:, p.line_rows[i]]
            v_violation[:, i] = np.sum(np.maximum(vm - hi, 0.0) + np.maximum(lo - vm, 0.0),
                                       axis=1)
            overload = np.sum(np.maximum(ld - 100.0, 0.0), axis=1)
            penalty[:, i] = (p.voltage_penalty_per_pu * v_violation[:, i]
                             + p.line_overload_penalty_per_pct * overload)
        v_lo, v_hi = s.v_min.min(1), s.v_max.max(1)
        background_kw = 0.0
        if len(p.feeder_buses):
            fv = pf.vm_pu[:, p.feeder_buses]
            v_lo, v_hi = np.minimum(v_lo, fv.min(1)), np.maximum(v_hi, fv.max(1))
        if len(p.feeder_load_rows):
            background_kw = (np.sum(p.feeder_load_mw * s.feeder_load_pu[self._arange, s.t][:, None],
                                    axis=1) * 1e3)
        rule = p.failure
        ok = pf.converged & rule.admissible(v_lo, v_hi, l_max.max(1))
        losses_kw = np.where(ok, pf.losses_mw * 1e3, rule.losses_kw(s.last_losses_kw))
        upstream_kw = np.where(ok, pf.p_slack_mw * 1e3,
                               rule.upstream_import_kw(net_kw, losses_kw, background_kw))
        s.last_losses_kw = np.where(ok, losses_kw, s.last_losses_kw)
        bad = ~ok
        if bad.any():  # the collapse state, never the solver's iterate
            penalty[bad] = rule.penalty(net_kw[bad], load_kw[bad])
            s.v_min[bad], s.v_max[bad] = V_FLOOR_PU, V_CEIL_PU
        metrics = self._safety_metrics(pf, ok, net_kw, load_kw, v_violation, l_max)
        return penalty, ok, upstream_kw, losses_kw, metrics

    def _feeder_extremes(self, pf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, N) lowest and highest voltage and highest line loading of each own feeder."""
        p = self.params
        if p.bus_block is not None and p.line_block is not None:
            (b0, b1, bo), (l0, l1, lo) = p.bus_block, p.line_block
            vm, ld = pf.vm_pu[:, b0:b1], pf.line_loading[:, l0:l1]
            return (np.minimum.reduceat(vm, bo, axis=1), np.maximum.reduceat(vm, bo, axis=1),
                    np.maximum.reduceat(ld, lo, axis=1))
        parts = [(pf.vm_pu[:, b], pf.line_loading[:, ln]) for b, ln in zip(p.bus_rows,
                                                                         p.line_rows)]
        return (np.stack([vm.min(1) for vm, _ in parts], 1),
                np.stack([vm.max(1) for vm, _ in parts], 1),
                np.stack([ld.max(1) for _, ld in parts], 1))

    def _safety_metrics(self, pf, ok, net_kw, load_kw, v_violation, l_max) -> SafetyMetrics:
        """The safety infos: own feeder's voltage violation and worst line, PCC loading, SOC
        out of bounds; the shared feeder's voltage range. Failed rows show the collapse
        state of ``powergrid.envs.safety`` (PCC: the last converged loading or the demanded
        stress, whichever is higher)."""
        p, s, B = self.params, self.state, self.B
        pcc = pf.trafo_loading[:, p.pcc_rows]
        if len(p.feeder_buses):
            fv = pf.vm_pu[:, p.feeder_buses]
            f_lo, f_hi = fv.min(1), fv.max(1)
        else:
            f_lo, f_hi = np.ones(B), np.ones(B)
        bad = ~ok
        if bad.any():
            rule = p.failure
            pcc[bad] = np.maximum(s.last_pcc[bad], 100.0 * rule.stress(net_kw[bad], load_kw[bad]))
            v_violation[bad] = rule.voltage_violation_pu
            l_max[bad] = LOADING_CEIL_PCT
            f_lo[bad], f_hi[bad] = V_FLOOR_PU, V_CEIL_PU
        s.last_pcc = np.where(ok[:, None], pcc, s.last_pcc)
        soc_violation = np.zeros((B, p.n_agents), bool)
        for i, (ess, bounds) in enumerate(zip(self._ess, self._soc_bounds)):
            for d, (lo, hi) in zip(ess, bounds):
                soc = d.info()["soc"]
                soc_violation[:, i] |= ~((lo <= soc) & (soc <= hi))
        return SafetyMetrics(
            {"voltage_violation_pu": v_violation, "line_loading_max_pct": l_max,
             "pcc_loading_pct": pcc, "soc_violation": soc_violation},
            {"feeder_v_min_pu": f_lo, "feeder_v_max_pu": f_hi,
             "pcc_loading_max_pct": pcc.max(1)})

    def _network_costs(self, pf, converged, retail, live
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``network_losses`` / ``network_violation`` (B, N) and the DSO's shares (B,), per
        row: each allocation linearises that row's solved state (one Jacobian per row)."""
        nc = self.network_costs
        if nc is None:
            return {}, {}
        B, N = self.B, self.params.n_agents
        terms = {k: np.zeros((B, N)) for k in NETWORK_COST_TERMS}
        info = {k: np.zeros(B) for k in NETWORK_DSO_KEYS}
        for b in live_rows(live):
            row, shared = nc.step_voltages(pf.V[b], bool(converged[b]), float(retail[b]),
                                           self.params.dt, float(pf.losses_mw[b]))
            for i, t in enumerate(row):
                for k in NETWORK_COST_TERMS:
                    terms[k][b, i] = t[k]
            for k in NETWORK_DSO_KEYS:
                info[k][b] = shared[k]
        return terms, info

    def _storage_terminal(self, last: np.ndarray) -> np.ndarray:
        """storage_terminal_price x stored energy lost over the episode, on last steps."""
        price = self.params.storage_terminal_price
        if price == 0.0 or not last.any():
            return np.zeros((self.B, self.params.n_agents))
        value = np.stack(storage_terminal(price, self.state.stored_start.T,
                                          self.stored_kwh().T), 1)
        return np.where(last[:, None], value, 0.0)

    # ------------------------------------------------------------------ observations
    @cached_property
    def obs_offsets(self) -> tuple[int, ...]:
        """Column offsets of each possible agent's features in :meth:`observe_all`
        (microgrids in order, then the DSO's), and the total at the end."""
        c0 = len(COMMON_LABELS) + (0 if self.ahead is None else len(ahead_market.AHEAD_LABELS))
        dims = [c0 + sum(len(d.obs_labels) for d in devs) + self.extra_obs
                for devs in self.devices]
        if self.has_dso:
            dims.append(len(DSO_OBS))
        return tuple(np.cumsum([0, *dims]).tolist())

    def observe(self) -> list[np.ndarray]:
        """Raw (B, obs_dim) features per possible agent, in the layout of ``COMMON_OBS``
        then the ahead market's, the devices' and the coordination's features (views of
        :meth:`observe_all`)."""
        obs, off = self.observe_all(), self.obs_offsets
        return [obs[:, a:b] for a, b in zip(off[:-1], off[1:])]

    def observe_all(self) -> np.ndarray:
        """(B, total obs_dim) raw features of every possible agent side by side (columns
        ``obs_offsets``), new each call: a front end checks and clips all agents at once."""
        p, s, off = self.params, self.state, self.obs_offsets
        ahead_cols = (None if self.ahead is None else ahead_market.observe(
            s.ahead, self.ahead, s.t, s.retail, s.feed_in, s.load_kw, p.peak_kw))
        dso = (np.array([c.dso_observation() for c in self.coords], float)
               if self.has_dso and self.coords is not None else None)
        if self.kernel is None:
            return np.concatenate(self._observe_general(ahead_cols)
                                  + ([] if dso is None else [dso]), axis=1)
        out = np.empty((self.B, off[-1]))  # compiled, then the columns of the Python stages
        self.kernel.observe_into(out)
        if ahead_cols is not None or self.extra_obs:
            c0 = len(COMMON_LABELS)
            for i, a in enumerate(self.agents):
                o = out[:, off[i]:off[i + 1]]
                if ahead_cols is not None:
                    o[:, c0:c0 + self.kernel.gap] = self._ahead_obs(ahead_cols, i)
                if self.extra_obs:
                    o[:, o.shape[1] - self.extra_obs:] = self._extra_obs(a)
        if dso is not None:
            out[:, off[-2]:] = dso
        return out

    def _observe_general(self, ahead_cols: dict[str, np.ndarray] | None
                         ) -> list[np.ndarray]:
        p, s, r = self.params, self.state, self._arange
        t = np.minimum(s.t, p.steps - 1)
        hours = s.hours[r, t]
        common = {"pv_now": s.pv[r, t], "pv_next": s.pv[r, t + 1],
                  "hour_sin": HOUR_SIN[hours], "hour_cos": HOUR_COS[hours],
                  "retail_price": s.retail[r, t], "feed_in_price": s.feed_in[r, t],
                  "last_clearing_price": s.last_price}
        out = []
        for i, a in enumerate(self.agents):
            peak = p.peak_kw[i]
            cols = common_features({
                **common, "load_now": s.load_forecast[r, t, i] / peak,
                "load_next": s.load_forecast[r, t + 1, i] / peak,
                "last_p2p_kwh": s.last_p2p[:, i] / peak, "last_grid_kwh": s.last_grid[:, i] / peak,
                "v_min_pu": s.v_min[:, i], "v_max_pu": s.v_max[:, i]})
            parts = [np.stack(cols, 1)]
            if ahead_cols is not None:
                parts.append(self._ahead_obs(ahead_cols, i))
            parts += [d.observe() for d in self.devices[i]]
            if self.extra_obs:
                parts.append(self._extra_obs(a))
            out.append(np.concatenate(parts, axis=1))
        return out

    @staticmethod
    def _ahead_obs(ahead_cols: dict[str, np.ndarray], i: int) -> np.ndarray:
        """(B, len(AHEAD_LABELS)) ahead-market features of agent ``i``."""
        return np.stack([ahead_cols[k][:, i] for k in ahead_market.AHEAD_LABELS], 1)

    def _extra_obs(self, agent: str) -> np.ndarray:
        """(B, extra_obs) coordination features of ``agent`` (vertical protocols)."""
        assert self.coords is not None
        return np.array([c.extra_obs_values(agent) for c in self.coords], float)
