"""The ahead market as core stages: orders for delivery t + k, gate clearing, imbalance.

Why: in the real-time market a microgrid trades an hour after its net position is known
exactly; here (``market_timing="ahead"``) it trades ``k = gate_lead_steps`` steps before
delivery, on forecasts, and pays for what it fails to deliver (``heron.market.ahead``).

Per step ``t`` of every row (both envs run these functions; the scalar env as B = 1):

1. :func:`deliver`: the position committed for ``t`` (``sold - bought``, cleared at gate
   ``t - 1``) meets the actual net export ``x = net_kw x dt``; ``settle_imbalance`` splits
   the deviation into the shortfall bought and the excess sold at the imbalance prices
   (``imbalance`` cost) and the residual settled at the tariff (``grid_import`` /
   ``grid_export_revenue``). The trades' money (``p2p_payment``, ``p2p_revenue``,
   ``fees``) is fixed at clearing and charged here, at delivery, so each step's reward
   holds the cost of that step's energy.
2. :func:`trade_batch` (built-in rules, centralized) or :func:`trade_rows` (any protocol,
   the broker of distributed mode): each agent's market action ``(quantity, price_1..k)``
   becomes a bid curve for delivery ``t + k`` (``decode_ahead_batch``), held until its
   gate; the book of delivery ``t + 1`` (gate ``t``) is cleared and committed. Orders for
   steps past the episode are not placed; steps ``< k`` have no commitment.

Forecasts (:func:`forecasts`): at reset each row draws, from the env's RNG after the
load noise, the forecasts of load (per microgrid) and PV of every step issued ``k`` steps
before it (``powergrid.data.forecast``, lead ``ceil(k x dt)`` hours). The observation
shows the forecast for the delivery step, the committed position of the current step and
the actual load of the last step (revealed at delivery).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from heron.market import ClearingResult, Order, Side
from heron.market.ahead import (
    ImbalancePrices,
    ImbalanceSettlement,
    decode_ahead_batch,
    settle_imbalance,
)
from powergrid.core.market import EPS_KWH, MarketResult, settle_rows
from powergrid.data.forecast import sigma, with_error
from powergrid.envs.spaces import EXCHANGE_BOUND, PER_PEAK, PRICE, Feature

if TYPE_CHECKING:
    from powergrid.envs.config import EnvConfig, MicrogridSpec
    from powergrid.envs.coordination import Coordination

# q = +-1 commits the largest net position a microgrid can reach in a step: its load at
# LOAD_HEADROOM x peak (the realised load adds noise) plus every device's rating
LOAD_HEADROOM = 1.2


def max_commit_kwh(spec: MicrogridSpec, dt_hours: float) -> float:
    """kWh a ``quantity`` action of +-1 commits: ``dt x (1.2 x peak load + sum of device
    ratings)`` (``p_max_kw``, else ``inverter_kw`` or ``capacity_kw`` of PV), so every
    reachable net position can be committed."""
    rated = 0.0
    for d in spec.devices:
        kw = getattr(d, "p_max_kw", None)
        if kw is None:
            kw = getattr(d, "inverter_kw", None) or getattr(d, "capacity_kw", 0.0)
        rated += float(kw)
    return dt_hours * (LOAD_HEADROOM * spec.peak_load_kw + rated)

# (label, low, high, unit) of the ahead market's features, after COMMON_OBS
AHEAD_OBS: tuple[Feature, ...] = (
    ("load_ahead", 0.0, 10.0, ""),        # load forecast for delivery t + k / peak load
    ("pv_ahead", 0.0, 5.0, ""),           # PV forecast per kW installed for delivery t + k
    ("retail_ahead", 0.0, 1.0, PRICE),    # tariff of the delivery step
    ("feed_in_ahead", 0.0, 1.0, PRICE),
    ("committed_now", -EXCHANGE_BOUND, EXCHANGE_BOUND, PER_PEAK),  # sold - bought due now / peak
    ("load_last", 0.0, 5.0, ""),          # actual load of the last step / peak (revealed)
)
AHEAD_LABELS = tuple(f[0] for f in AHEAD_OBS)


@dataclass(frozen=True)
class AheadParams:
    """The ahead market's static settings (from the config) for N microgrids."""

    lead: int                 # gate_lead_steps k
    levels: int               # bid_curve_points
    prices: ImbalancePrices
    max_kwh: np.ndarray       # (N,) kWh committed by quantity action 1
    lead_hours: int           # forecast lead in whole hours
    load_kinds: tuple[str, ...]  # forecast error kind of each microgrid's load

    @classmethod
    def build(cls, cfg: EnvConfig) -> AheadParams | None:
        if cfg.market_timing != "ahead":
            return None
        dt = float(cfg.dt_hours)
        return cls(lead=cfg.gate_lead_steps, levels=cfg.bid_curve_points,
                   prices=cfg.imbalance_prices,
                   max_kwh=np.array([max_commit_kwh(m, dt) for m in cfg.microgrids]),
                   lead_hours=max(1, math.ceil(cfg.gate_lead_steps * dt - 1e-9)),
                   load_kinds=tuple(f"load_{m.load_profile}" for m in cfg.microgrids))

    @property
    def action_labels(self) -> tuple[str, ...]:
        """The market components of the action, after the devices'."""
        if self.levels == 1:
            return ("quantity", "price")
        return ("quantity", *(f"price_{j + 1}" for j in range(self.levels)))


@dataclass
class AheadState:
    """Orders held until their gate and the commitment of the next delivery, (B, ...)."""

    side: np.ndarray          # (B, k, N * levels) order books by delivery step mod k
    quantity: np.ndarray
    price: np.ndarray
    committed: MarketResult   # (B, N) of the delivery step after the last gate
    results: list             # per row: the ClearingResult committed (row path), or None
    load_fc: np.ndarray       # (B, T+1, N) load forecast of each step, issued k before
    pv_fc: np.ndarray         # (B, T+1)

    @classmethod
    def empty(cls, B: int, N: int, steps: int, p: AheadParams) -> AheadState:
        K = N * p.levels
        return cls(np.zeros((B, p.lead, K), np.int64), np.zeros((B, p.lead, K)),
                   np.zeros((B, p.lead, K)), _no_trades(B, N), [None] * B,
                   np.zeros((B, steps + 1, N)), np.zeros((B, steps + 1)))

    def reset_rows(self, rows: np.ndarray) -> None:
        self.side[rows] = 0
        c = self.committed
        for arr in (c.bought, c.sold, c.paid, c.received, c.fees):
            arr[rows] = 0.0
        c.price[rows] = np.nan
        for b in rows:
            self.results[b] = None


def _no_trades(B: int, N: int) -> MarketResult:
    return MarketResult(*(np.zeros((B, N)) for _ in range(5)), np.full(B, np.nan))


def forecast_normals(p: AheadParams, steps: int, rng: np.random.Generator) -> np.ndarray:
    """One row's standard normals of its forecast errors, (N + 1, T + 1): each microgrid's
    load series, then PV; drawn from the env's RNG after the load noise."""
    return rng.standard_normal((len(p.load_kinds) + 1, steps + 1))


def forecasts(p: AheadParams, load_kw: np.ndarray, pv_per_kw: np.ndarray,
              normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts of load (R, T+1, N) and PV (R, T+1), issued ``lead`` before each step, of
    R rows at once from their :func:`forecast_normals` (R, N + 1, T + 1)
    (``powergrid.data.forecast``: log-normal, the calibrated error at the lead)."""
    load_sigma = np.array([sigma(k, p.lead_hours) for k in p.load_kinds])
    load = with_error(load_kw, load_sigma, np.swapaxes(normals[:, :-1], 1, 2))
    return load, with_error(pv_per_kw, sigma("pv", p.lead_hours), normals[:, -1])


def deliver(st: AheadState, p: AheadParams, net_kwh: np.ndarray, retail: np.ndarray,
            feed_in: np.ndarray) -> tuple[MarketResult, ImbalanceSettlement]:
    """The commitment due now (copied: the gate after overwrites it) and its settlement
    against the actual net export ``net_kwh`` (B, N) at this step's tariff (B,)."""
    c = st.committed
    due = MarketResult(c.bought.copy(), c.sold.copy(), c.paid.copy(), c.received.copy(),
                       c.fees.copy(), c.price.copy(), results=list(st.results))
    settled = settle_imbalance(due.sold - due.bought, net_kwh, retail[:, None],
                               feed_in[:, None], p.prices)
    return due, settled


def _commit(st: AheadState, m: MarketResult, rows: np.ndarray) -> None:
    c = st.committed
    for name in ("bought", "sold", "paid", "received", "fees"):
        getattr(c, name)[rows] = getattr(m, name)[rows]
    c.price[rows] = m.price[rows]


def trade_batch(st: AheadState, p: AheadParams, rule: Any, fee: float,
                t: np.ndarray, steps: int, market_acts: np.ndarray, low: np.ndarray,
                high: np.ndarray, live: np.ndarray) -> None:
    """Place every row's orders for ``t + k`` and clear the books of ``t + 1`` at once.

    ``market_acts`` (B, N, 1 + levels) in [-1, 1]; ``low``/``high`` (B, N) the band of
    the delivery step.
    """
    B, N = low.shape
    r = np.arange(B)
    side, qty, price = decode_ahead_batch(_unit_prices(market_acts), p.max_kwh, low, high,
                                          EPS_KWH)
    submit = live & (t + p.lead < steps)
    slot = t % p.lead
    st.side[r, slot] = np.where(submit[:, None], side, 0)
    st.quantity[r, slot], st.price[r, slot] = qty, price
    gate = (t + 1) % p.lead
    books = np.where((live & (t + 1 < steps))[:, None], st.side[r, gate], 0)
    m = rule.clear_batch(books, st.quantity[r, gate], st.price[r, gate], fee)
    L = p.levels

    def per_agent(x: np.ndarray) -> np.ndarray:
        return x if L == 1 else x.reshape(B, N, L).sum(axis=2)

    result = MarketResult(per_agent(m.bought), per_agent(m.sold), per_agent(m.paid),
                          per_agent(m.received), per_agent(m.fees), m.price)
    st.side[r[live], gate[live]] = 0
    _commit(st, result, np.flatnonzero(live))


def _unit_prices(market_acts: np.ndarray) -> np.ndarray:
    """Price components from the action box [-1, 1] to [0, 1] (quantity stays signed)."""
    a = np.array(market_acts, dtype=float)
    a[..., 1:] = (a[..., 1:] + 1.0) * 0.5
    return a


def row_curve_orders(agents: Sequence[str], p: AheadParams, market_acts: np.ndarray,
                     bands: Sequence[tuple[float, float]]) -> list[Order]:
    """One row's orders, agent by agent and level by level (the batch's slot order)."""
    side, qty, price = decode_ahead_batch(_unit_prices(market_acts[None]), p.max_kwh,
                                          np.array([b[0] for b in bands])[None],
                                          np.array([b[1] for b in bands])[None], EPS_KWH)
    L = p.levels
    return [Order(agents[j // L], Side.BUY if side[0, j] > 0 else Side.SELL,
                  float(qty[0, j]), float(price[0, j]))
            for j in range(side.shape[1]) if side[0, j] != 0]


def trade_rows(st: AheadState, p: AheadParams, agents: Sequence[str],
               coords: Sequence[Coordination], t: np.ndarray, steps: int,
               market_acts: np.ndarray, retail_d: np.ndarray, feed_in_d: np.ndarray,
               live: np.ndarray) -> list[list[Order]]:
    """As :func:`trade_batch`, row by row through each row's ``Coordination`` (any
    protocol; the broker decides which orders reach the market before their gate).
    ``retail_d``/``feed_in_d`` (B,) are the delivery step's tariff. Returns each row's
    orders placed this step (for the scalar env's infos)."""
    B, N = market_acts.shape[:2]
    placed: list[list[Order]] = [[] for _ in range(B)]
    results: list[ClearingResult | None] = [None] * B
    rows = np.flatnonzero(live)
    for b in rows:
        c, tb = coords[b], int(t[b])
        if tb + p.lead < steps:
            bands = [c.band(a, float(feed_in_d[b]), float(retail_d[b])) for a in agents]
            placed[b] = row_curve_orders(agents, p, market_acts[b], bands)
            c.submit_ahead(placed[b], tb + p.lead)
        results[b] = c.clear_gate(tb + 1) if tb + 1 < steps else None
        st.results[b] = results[b]
    _commit(st, settle_rows(list(agents), results, [[] for _ in range(B)]), rows)
    return placed


def delivery_tariff(retail: np.ndarray, feed_in: np.ndarray, t: np.ndarray, lead: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(B,) tariff of each row's delivery step ``t + lead`` (clipped to the series)."""
    r, d = np.arange(len(t)), np.minimum(t + lead, retail.shape[1] - 1)
    return retail[r, d], feed_in[r, d]


def observe(st: AheadState, p: AheadParams, t: np.ndarray, retail: np.ndarray,
            feed_in: np.ndarray, load_kw: np.ndarray, peak_kw: np.ndarray
            ) -> dict[str, np.ndarray]:
    """The :data:`AHEAD_OBS` features, label -> (B, N), before each row's step ``t``
    (``t`` = the episode length after the last step)."""
    r = np.arange(len(t))
    d = np.minimum(t + p.lead, retail.shape[1] - 1)
    last = np.maximum(t - 1, 0)
    c = st.committed
    n = peak_kw.shape[0]
    return {"load_ahead": st.load_fc[r, d] / peak_kw,
            "pv_ahead": np.repeat(st.pv_fc[r, d][:, None], n, axis=1),
            "retail_ahead": np.repeat(retail[r, d][:, None], n, axis=1),
            "feed_in_ahead": np.repeat(feed_in[r, d][:, None], n, axis=1),
            "committed_now": (c.sold - c.bought) / peak_kw,
            "load_last": np.where((t > 0)[:, None], load_kw[r, last] / peak_kw, 0.0)}
