"""Coordination: how the microgrids' intents become market results and operator signals.

One object per env runs, each step, the vertical protocol (an operator "DSO" above the
microgrids) and the horizontal protocol (trading among the microgrids), either in-process
(``centralized=True``) or by exchanging :class:`~heron.messaging.Message` s through a
broker (``centralized=False``): the :class:`~heron.messaging.InMemoryBroker` (config
``"broker": "memory"``, the default) or the :class:`~heron.messaging.ZmqBroker`
(``"broker": "zmq"``: every microgrid, the market and the operator are separate processes
exchanging the messages over ZeroMQ; same results, closed by ``env.close()``).

Vertical protocols
    * ``PriceSignalProtocol``: the operator announces the price of hour ``t`` before the
      microgrids act in it (it is in their observation as ``signal_price``). That price is
      the upstream tariff of the hour: imports pay it, exports earn ``signal * feed_in /
      retail`` (the hour's tariff feed-in share), and the P2P price band becomes
      [that export price, signal] (narrowed by the trading fee, see below). Its base is ``base_at(hour of day)``. Modes: ``fixed``
      = base; ``rule`` = base moved by the previous step's aggregate net demand of all
      microgrids, passed to the protocol as a fraction of their total peak load (kWh /
      (sum of peaks x dt)); ``agent`` = a learning agent ``"DSO"`` whose action at step t
      sets the price of step t+1 (hour 0 uses the base). The DSO is rewarded for peak
      shaving: ``-(aggregate grid exchange / (sum of peaks x dt)) ** 2``, dimensionless, zero
      when the microgrids together neither import nor export.
    * ``SetpointProtocol``: a rule-based operator splits ``setpoint_target_kw`` (aggregate
      export - import, default 0 = self-sufficiency) among microgrids in proportion to their
      peak load; each microgrid pays ``tracking_weight * |exchange - set-point|`` (kWh) as
      ``costs["tracking_penalty"]``; its set-point is observed as ``grid_setpoint`` / peak.

Horizontal protocols
    * ``P2PTradingProtocol`` (or anything with ``clear(orders, agents)``): order book.
    * ``ConsensusProtocol``: the traders agree on one price, the quantity-weighted average
      of their limit prices (ratio consensus); then the matched volume min(supply, demand)
      is split pro rata by quantity between every seller/buyer pair, at the agreed price.
      Limits all lie in the band [feed-in, retail], so the agreed price is never worse than
      the grid for anyone, though it may cross an individual limit.
    * Fees: limit prices lie in ``series.price_band`` = [feed-in + fee/2, retail - fee/2]
      (``HorizontalProtocol.fee_per_unit``, each side pays half), so a trade never leaves
      either side worse off than the grid alternative; if the fee exceeds the spread,
      nobody posts an order that hour. Without agreement
      (``converged=False``, e.g. a disconnected topology) nobody trades this hour.

Distributed mode
    Each microgrid sends its order to the ``"market"`` endpoint; the market clears what has
    arrived for the current step and sends a confirmation of every trade to both parties;
    the operator broadcasts its signals. An order is valid only for the hour it was made
    for (gate closure: energy for a past hour cannot be delivered any more), so an order
    arriving late is discarded and counted as ``stale``; a dropped order never arrives.
    In the ahead market (``market_timing="ahead"``) an order for delivery step ``d`` is
    valid until the gate of ``d`` closes at step ``d - 1``: sent at ``d - k`` with latency
    ``L`` it trades iff ``L < k`` (``gate_lead_steps``).
    Either way that microgrid settles its whole imbalance with the grid. The market's books
    are authoritative: a lost confirmation does not undo a trade. Agents act on the last
    signal they received (before the first, on the base price); the operator bills at the
    price it actually set. With zero latency and no loss this equals centralized mode
    exactly. ``infos[a]["comm"]`` counts this step's sent / dropped orders, orders delivered
    to the market (stale ones included) and messages received.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heron.market import ClearingResult, Order, Side, Trade
from heron.messaging import InMemoryBroker, Message, ScheduledBroker
from heron.protocols import (
    ConsensusProtocol,
    HorizontalProtocol,
    PriceSignalProtocol,
    SetpointProtocol,
    VerticalProtocol,
)
from powergrid.envs.series import price_band
from powergrid.envs.spaces import EXCHANGE_BOUND, PER_PEAK, PRICE
from powergrid.limits import MAX_PRICE_PER_KWH

DSO = "DSO"
MARKET = "market"
# (label, low, high, unit) of the DSO agent's observation (mode "agent"); units in
# powergrid.envs.spaces.
DSO_OBS: tuple[tuple[str, float, float, str], ...] = (
    ("hour_sin", -1.0, 1.0, ""),
    ("hour_cos", -1.0, 1.0, ""),
    # net demand last step / (sum of peaks x dt): within the per-microgrid exchange bound
    ("last_aggregate_net", -EXCHANGE_BOUND, EXCHANGE_BOUND, ""),
    ("signal_price", 0.0, 1.0, PRICE),            # price announced for this hour
    ("retail_price", 0.0, 1.0, PRICE),
    ("feed_in_price", 0.0, 1.0, PRICE),
)
COMM_KEYS = ("sent", "delivered", "dropped", "stale", "received")


def tariff_price_signal(retail_price: Sequence[float], mode: str = "rule",
                        sensitivity: float = 0.5, spread: float = 0.5) -> PriceSignalProtocol:
    """A price signal around a 24-hour retail tariff, bounded to ``(1 -/+ spread) x tariff``.

    The protocol's own default base (mid of [0, 1] $/kWh) is far above typical tariffs, so
    this is the convenient way to get an operator that starts from the tariff.
    """
    retail = [float(p) for p in retail_price]
    bounds = ((1.0 - spread) * min(retail), (1.0 + spread) * max(retail))
    return PriceSignalProtocol(tuple(retail), mode=mode, sensitivity=sensitivity,  # type: ignore[arg-type]
                               price_bounds=bounds)


@dataclass(frozen=True)
class StepNeeds:
    """Which per-step work of :class:`Coordination` a set-up needs, fixed at construction.

    The default (a centralized market, no operator, no broker) needs neither: its tariff is
    the series' and it has no penalties or signals to settle, so the per-row stages can skip
    it (the per-step calls cost a noticeable share of a scalar step).
    """

    signal: bool  # tariff(): an operator signal, broker deliveries or a consensus record
    settle: bool  # settle(): tracking penalties, the operator's state, next step's signals

    @classmethod
    def of(cls, horizontal: HorizontalProtocol | None, vertical: VerticalProtocol | None,
           centralized: bool) -> StepNeeds:
        operated = vertical is not None or not centralized
        return cls(signal=operated or isinstance(horizontal, ConsensusProtocol),
                   settle=operated)

    @classmethod
    def any(cls, needs: Iterable[StepNeeds]) -> StepNeeds:
        """What a batch of rows needs: whatever any row needs."""
        needs = list(needs)
        return cls(any(n.signal for n in needs), any(n.settle for n in needs))


class Coordination:
    """Runs the vertical and horizontal protocols for ``agents`` (the microgrids), each step.

    Call order per step: :meth:`tariff`, :meth:`band` per agent, :meth:`clear`,
    :meth:`settle`, :meth:`annotate`. :meth:`reset` at every episode start.
    """

    def __init__(self, cfg: Any, horizontal: HorizontalProtocol | None,
                 vertical: VerticalProtocol | None, agents: Sequence[str],
                 peak_kw: Sequence[float]) -> None:
        self.agents = list(agents)
        self.horizontal = horizontal
        self.vertical = vertical
        self.dt = float(cfg.dt_hours)
        self._peak = np.asarray(peak_kw, float)
        self._scale = float(self._peak.sum()) * self.dt  # kWh of all peaks in one step
        self.centralized = bool(cfg.centralized)
        self._check(cfg)
        self.needs = StepNeeds.of(horizontal, vertical, self.centralized)
        self.price_signal = vertical if isinstance(vertical, PriceSignalProtocol) else None
        self.setpoint = vertical if isinstance(vertical, SetpointProtocol) else None
        self.has_dso = self.price_signal is not None and self.price_signal.mode == "agent"
        target = self._setpoint_target_kw = cfg.setpoint_target_kw or 0.0
        self._setpoints = (SetpointProtocol.proportional_split(
            target * self.dt, dict(zip(self.agents, self._peak.tolist(), strict=True)))
            if self.setpoint is not None else {})
        self.broker: ScheduledBroker | None = None
        if not self.centralized:
            self.broker = make_broker(cfg.broker, cfg.latency_steps, cfg.drop_prob)
            for endpoint in (*self.agents, MARKET, DSO):
                self.broker.register(endpoint)
        self._seed_rng = np.random.default_rng()
        self.tariff_now: tuple[float, float] = (math.nan, math.nan)  # set by tariff()

    def _check(self, cfg: Any) -> None:
        h, v = self.horizontal, self.vertical
        if h is not None and not isinstance(h, ConsensusProtocol) and not callable(
                getattr(h, "clear", None)):
            raise TypeError(f"horizontal_protocol {type(h).__name__} is not supported: use "
                            f"P2PTradingProtocol, ConsensusProtocol or a protocol with "
                            f"clear(orders, agents)")
        if v is not None and not isinstance(v, (PriceSignalProtocol, SetpointProtocol)):
            raise TypeError(f"vertical_protocol {type(v).__name__} is not supported: use "
                            f"PriceSignalProtocol or SetpointProtocol")
        if isinstance(v, PriceSignalProtocol) and v.price_bounds[0] < 0:
            raise ValueError(f"PriceSignalProtocol.price_bounds {v.price_bounds} allow negative "
                             f"prices; the grid tariff and order limits must be >= 0")
        if isinstance(v, PriceSignalProtocol) and v.price_bounds[1] > MAX_PRICE_PER_KWH:
            raise ValueError(f"PriceSignalProtocol.price_bounds {v.price_bounds}: prices above "
                             f"{MAX_PRICE_PER_KWH:g} $/kWh are outside the env's range "
                             f"(powergrid.limits)")
        if isinstance(v, SetpointProtocol) and v.tracking_weight > MAX_PRICE_PER_KWH:
            raise ValueError(f"SetpointProtocol.tracking_weight {v.tracking_weight:g} is outside "
                             f"the env's range [0, {MAX_PRICE_PER_KWH:g}] $/kWh "
                             f"(powergrid.limits)")
        if cfg.setpoint_target_kw is not None and not isinstance(v, SetpointProtocol):
            raise ValueError("config key 'setpoint_target_kw' needs vertical_protocol="
                             "SetpointProtocol(...)")
        if self.centralized and cfg.broker != "memory":
            raise ValueError(f"config key 'broker': {cfg.broker!r} is the transport of "
                             f"distributed mode; set 'centralized': False")
        if self.centralized and (cfg.latency_steps or cfg.drop_prob):
            raise ValueError("config keys 'latency_steps'/'drop_prob' describe the message "
                             "broker of distributed mode; set 'centralized': False")
        reserved = {MARKET, DSO} if not self.centralized else {DSO} if v is not None else set()
        clash = sorted(reserved & set(self.agents))
        if clash:
            raise ValueError(f"microgrid name(s) {clash} are reserved for the operator/market "
                             f"endpoints in this configuration")
        if isinstance(h, ConsensusProtocol):
            h.agree({a: 1.0 for a in self.agents})  # fail now on a topology with unknown peers

    def close(self) -> None:
        """Release the broker's processes and sockets, if it has any."""
        close = getattr(self.broker, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ observations
    @property
    def extra_obs(self) -> tuple[tuple[str, float, float, str], ...]:
        """Features appended to every microgrid's observation (none by default)."""
        if self.price_signal is not None:
            return (("signal_price", 0.0, 1.0, PRICE),)
        if self.setpoint is not None:  # kWh / peak load; a set-point share may exceed 10 x dt
            bound = max(EXCHANGE_BOUND, 2.0 * abs(self._setpoint_target_kw) / self._peak.sum())
            return (("grid_setpoint", -bound, bound, PER_PEAK),)
        return ()

    def extra_obs_values(self, agent: str) -> list[float]:
        if self.price_signal is not None:
            return [self._known_price[agent]]
        if self.setpoint is not None:
            return [self._known_setpoint[agent] / self._peak[self.agents.index(agent)]]
        return []

    def info_schema(self) -> tuple[dict[str, Any] | None, bool]:
        """What :meth:`annotate` adds: the vertical info's keys (constant values kept,
        measured ones None) and whether a consensus record is added to the market info."""
        vertical = None
        if self.price_signal is not None:
            vertical = {"protocol": "price_signal", "mode": self.price_signal.mode,
                        "price": None, "export_price": None, "known_price": None}
        elif self.setpoint is not None:
            vertical = {"protocol": "setpoint", "setpoint_kwh": None, "exchange_kwh": None,
                        "tracking_error": None, "tracking_penalty": None}
        return vertical, isinstance(self.horizontal, ConsensusProtocol)

    def dso_observation(self) -> np.ndarray:
        k = min(self._next, len(self._hours) - 1)
        angle = 2 * math.pi * self._hours[k] / 24
        return np.array([math.sin(angle), math.cos(angle), self._last_agg, self._price,
                         self._retail[k], self._feed_in[k]], np.float32)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None, hours: Sequence[int], retail: np.ndarray,
              feed_in: np.ndarray) -> None:
        """Start an episode; a seed fixes the broker's losses for the whole episode."""
        if seed is not None:
            self._seed_rng = np.random.default_rng([seed, 0xB40C])
        if self.broker is not None:
            self.broker.reset(int(self._seed_rng.integers(2**32)))
        if self.horizontal is not None:
            self.horizontal.reset()
        self._hours, self._retail, self._feed_in = list(hours), retail, feed_in
        self._pending: dict[int, list[Order]] = {}  # ahead market: orders by delivery step
        self._last_agg = 0.0
        self._dso_reward, self._dso_info = 0.0, {}
        self._vertical_info: dict[str, dict[str, Any]] = {}
        self._known_price: dict[str, float] = {}
        self._known_setpoint: dict[str, float] = {}
        if self.price_signal is not None:
            base = self.price_signal.base_at(int(self._hours[0]))
            self._known_price = {a: base for a in self.agents}
        self._known_setpoint = {a: 0.0 for a in self.agents}
        self._new_step(0)
        self._announce(0, None)

    def _new_step(self, t: int) -> None:
        self._t = t
        self._consensus: dict[str, Any] | None = None
        if self.broker is not None:  # only messages are counted (annotate: zeros without)
            self._comm = {a: dict.fromkeys(COMM_KEYS, 0) for a in (*self.agents, DSO)}
            self.broker.deliver(t)

    def _comm_of(self, endpoint: str) -> dict[str, int]:
        """This step's message counts of ``endpoint`` (a new all-zero record without broker)."""
        if self.broker is None:
            return dict.fromkeys(COMM_KEYS, 0)
        return self._comm[endpoint]

    def _announce(self, k: int, dso_action: np.ndarray | None) -> None:
        """Set and send the operator's signals for step ``k`` (before agents act in it)."""
        self._next = k
        hour = int(self._hours[min(k, len(self._hours) - 1)])
        ps = self.price_signal
        if ps is not None:
            if ps.mode == "rule":
                self._price = ps.price(hour, aggregate_net=self._last_agg)
            elif ps.mode == "agent" and dso_action is not None:
                self._price = ps.price(hour, action=float(dso_action[0]))
            else:  # fixed, or the agent's first hour
                self._price = ps.base_at(hour)
        if self.broker is None:
            if ps is not None:
                self._known_price = dict.fromkeys(self.agents, self._price)
            self._known_setpoint = dict(self._setpoints) or self._known_setpoint
            return
        if ps is not None:
            self._send_all(ps.broadcast(self._price, self.agents), "price", k)
        if self.setpoint is not None:
            self._send_all(self.setpoint.dispatch(self._setpoints, self.agents), "setpoint", k)
        self.broker.deliver(k)
        self._drain()

    def _send_all(self, signals: Mapping[str, Any], topic: str, k: int) -> None:
        assert self.broker is not None
        for a, value in signals.items():
            self._send(Message(DSO, a, topic, float(np.asarray(value).sum()), k))

    def _send(self, message: Message) -> None:
        assert self.broker is not None
        before = self.broker.stats.dropped
        self.broker.send(message)
        c = self._comm[message.sender] if message.sender in self._comm else None
        if c is not None:
            c["sent"] += 1
            c["dropped"] += self.broker.stats.dropped - before

    def _drain(self) -> None:
        assert self.broker is not None
        for a in self.agents:
            for m in self.broker.receive(a):
                self._comm[a]["received"] += 1
                if m.topic == "price":
                    self._known_price[a] = m.payload
                elif m.topic == "setpoint":
                    self._known_setpoint[a] = m.payload

    # ------------------------------------------------------------------ one step
    def tariff(self, t: int, retail: float, feed_in: float) -> tuple[float, float]:
        """Import and export price of step ``t``: the tariff, or the operator's signal."""
        self.tariff_now = (retail, feed_in)  # what this step settles at (infos report it)
        if not self.needs.signal:
            return retail, feed_in
        self._new_step(t)
        self._ratio = feed_in / retail if retail > 0 else 0.0
        self._vertical_info = {}
        if self.price_signal is None:
            return retail, feed_in
        price, export = self._price, self._price * self._ratio
        self.tariff_now = (price, export)
        self._vertical_info = {a: {"protocol": "price_signal", "mode": self.price_signal.mode,
                                   "price": price, "export_price": export,
                                   "known_price": self._known_price[a]} for a in self.agents}
        return price, export

    def band(self, agent: str, feed_in: float, retail: float) -> tuple[float, float]:
        """The limit-price band ``agent`` believes in (``price_band``: fees included, low >
        high when no trade can beat the grid); with stale signals it may be outdated."""
        fee = self.horizontal.fee_bound(agent) if self.horizontal is not None else 0.0
        if self.price_signal is None or self.broker is None:
            return price_band(feed_in, retail, fee)  # type: ignore[return-value]
        known = self._known_price[agent]
        return price_band(known * self._ratio, known, fee)  # type: ignore[return-value]

    def clear(self, orders: list[Order]) -> ClearingResult | None:
        """Market result of this step's orders (through the broker in distributed mode)."""
        if self.horizontal is None:
            return None
        if self.broker is not None:
            orders = self._route_orders(orders)
        if isinstance(self.horizontal, ConsensusProtocol):
            result = self._consensus_clear(orders)
        else:
            result = self.horizontal.clear(orders, agents=self.agents)  # type: ignore[attr-defined]
        self._send_trades(result)
        return result

    def submit_ahead(self, orders: list[Order], delivery: int) -> None:
        """Ahead market: place this step's orders for step ``delivery`` (held by the market
        until its gate, or sent to it through the broker)."""
        if self.broker is None:
            self._pending.setdefault(delivery, []).extend(orders)
            return
        for o in orders:
            self._send(Message(o.agent, MARKET, "order", (delivery, o), self._t))

    def clear_gate(self, delivery: int) -> ClearingResult | None:
        """Ahead market: at the gate of step ``delivery`` (the step before it), clear every
        order for it that has reached the market; one arriving after its gate is stale."""
        if self.horizontal is None:
            return None
        if self.broker is not None:
            self.broker.deliver(self._t)
            for m in self.broker.receive(MARKET, "order"):
                step, order = m.payload
                self._comm[m.sender]["delivered"] += 1
                if step - 1 < self._t:
                    self._comm[m.sender]["stale"] += 1  # its gate has closed
                else:
                    self._pending.setdefault(step, []).append(order)
        orders = self._pending.pop(delivery, [])
        result = self.horizontal.clear(orders, agents=self.agents)  # type: ignore[attr-defined]
        self._send_trades(result)
        return result

    def _send_trades(self, result: ClearingResult) -> None:
        """Distributed mode: the market tells both parties of every trade."""
        if self.broker is not None:
            for tr in result.trades:
                for party in (tr.buyer, tr.seller):
                    self._send(Message(MARKET, party, "trade", tr, self._t))

    def _route_orders(self, orders: list[Order]) -> list[Order]:
        assert self.broker is not None
        t = self._t
        for o in orders:
            self._send(Message(o.agent, MARKET, "order", (t, o), t))
        self.broker.deliver(t)
        valid = []
        for m in self.broker.receive(MARKET, "order"):
            step, order = m.payload
            self._comm[m.sender]["delivered"] += 1
            if step == t:
                valid.append(order)
            else:
                self._comm[m.sender]["stale"] += 1  # gate closed for that hour
        return valid

    def _consensus_clear(self, orders: list[Order]) -> ClearingResult:
        proto = self.horizontal
        assert isinstance(proto, ConsensusProtocol)
        if not orders:
            return ClearingResult.from_trades(())
        peers = [o.agent for o in orders]
        res = _restricted(proto, peers).agree({o.agent: o.price for o in orders},
                                               {o.agent: o.quantity for o in orders})
        self._consensus = {"price": res.value, "iterations": res.iterations,
                           "converged": res.converged, "residual": res.residual,
                           "participants": peers}
        sellers = [o for o in orders if o.side is Side.SELL]
        buyers = [o for o in orders if o.side is Side.BUY]
        if not (res.converged and sellers and buyers):
            return ClearingResult.from_trades(())
        supply = math.fsum(o.quantity for o in sellers)
        demand = math.fsum(o.quantity for o in buyers)
        volume = min(supply, demand)
        trades = [Trade(b.agent, s.agent, volume * (s.quantity / supply) * (b.quantity / demand),
                        res.value) for b in buyers for s in sellers]
        return ClearingResult.from_trades([tr for tr in trades if tr.quantity > 0],
                                          clearing_price=res.value)

    def settle(self, exchange_kwh: np.ndarray, net_kwh: np.ndarray,
               dso_action: np.ndarray | None) -> np.ndarray:
        """Close step t: tracking penalties per agent; then announce step t+1's signals.

        ``exchange_kwh`` is each microgrid's grid export - import, ``net_kwh`` its
        generation - load (before trading).
        """
        penalties = np.zeros(len(self.agents))
        if not self.needs.settle:
            return penalties
        if self.broker is not None:
            self._drain()  # trade confirmations of this step
        if self.setpoint is not None:
            for i, a in enumerate(self.agents):
                sp = self._setpoints[a]
                err = self.setpoint.tracking_error(sp, float(exchange_kwh[i]))
                penalties[i] = self.setpoint.tracking_weight * err
                self._vertical_info[a] = {"protocol": "setpoint", "setpoint_kwh": sp,
                                          "exchange_kwh": float(exchange_kwh[i]),
                                          "tracking_error": err,
                                          "tracking_penalty": float(penalties[i])}
        # np.add.reduce is np.sum without its dispatch (the per-row hot path at B = 1)
        agg_exchange = float(np.add.reduce(exchange_kwh)) / self._scale
        self._dso_reward = -agg_exchange ** 2
        self._dso_info = {"aggregate_exchange": agg_exchange,
                          "vertical": {"protocol": "price_signal", "mode": "agent",
                                       "price": getattr(self, "_price", math.nan)}}
        self._last_agg = -float(np.add.reduce(net_kwh)) / self._scale
        self._announce(self._t + 1, dso_action)
        return penalties

    def annotate(self, infos: dict[str, dict], rewards: dict[str, float]) -> None:
        """Add this step's coordination details to ``infos`` (and the DSO's reward)."""
        for a in self.agents:
            infos[a]["comm"] = self._comm_of(a)
            if self._vertical_info:
                infos[a]["vertical"] = self._vertical_info[a]
            if isinstance(self.horizontal, ConsensusProtocol):
                infos[a]["market"]["consensus"] = self._consensus
        if self.has_dso:
            rewards[DSO] = self._dso_reward
            infos[DSO] = {**self._dso_info, "comm": self._comm_of(DSO),
                          "next_price": self._price}


def make_broker(kind: str, latency_steps: int, drop_prob: float) -> ScheduledBroker:
    """The broker of distributed mode: ``"memory"`` or ``"zmq"`` (needs pyzmq)."""
    if kind == "memory":
        return InMemoryBroker(latency_steps, drop_prob)
    try:
        from heron.messaging.zmq_broker import ZmqBroker
    except ImportError as exc:
        raise ValueError("config key 'broker': 'zmq' needs pyzmq: "
                         "pip install 'heron-grid[distributed]'") from exc
    return ZmqBroker(latency_steps, drop_prob)


def _restricted(proto: ConsensusProtocol, peers: list[str]) -> ConsensusProtocol:
    """The protocol over only this step's traders (a mapping topology keeps their links)."""
    topo = proto.topology
    if not isinstance(topo, Mapping):
        return proto
    keep = set(peers)
    sub = {p: [q for q in ns if q in keep] for p, ns in topo.items() if p in keep}
    return ConsensusProtocol(proto.tolerance, proto.max_iterations, proto.step_size, sub)
