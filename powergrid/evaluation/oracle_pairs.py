"""Pair-dependent P2P fees in the oracle: who trades with whom, and the orders that make it so.

With a :class:`~heron.market.PairFees` (e.g. the network-use fee of
``powergrid.network_costs``) a traded kWh between buyer ``i`` and seller ``j`` costs
``fee + pair[i, j]`` in total, so the cost of a step depends on the pairing, not only on
the volume. The MILP then has a variable ``x_ij`` (kWh) per ordered pair of *eligible*
microgrids, worth ``margin_ij = retail - feed_in - fee - pair[i, j]`` per kWh (each one
avoids an import and an export):

    sum_j x_ij <= dt g_i,    sum_i x_ij <= dt s_j,    cost -margin_ij x_ij

and a binary side per eligible microgrid (its one order is a bid or an ask, never both).

Eligible: the env narrows each microgrid's limit band by its *worst* pair,
``[feed_in + b_i / 2, retail - b_i / 2]`` with ``b_i = fee + max_j pair`` (as buyer or
seller), and posts no order when it is empty; a microgrid trades in the model when its
band is non-empty with room (``retail - feed_in > b_i``), so every margin between
eligible microgrids is positive and the MILP trades the most volume the crossing books
allow, as the env's rules do.

Why exact: uniform and pay-as-bid cross the aggregate curves and pair the accepted orders
greedily in price-time priority. With at most three microgrids one side of a step's book
has a single order, so the cheapest pairing is greedy by margin, and the replay realises
it by pricing the other side's orders strictly in that order within their bands
(:func:`price_actions`). With four or more, two sellers can meet two buyers and the
greedy pairing of some price order is not always the cheapest; the continuous double
auction pairs in arrival order (fixed by the agent order). Both are refused
(``NotImplementedError``) by :func:`check_supported`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heron.market import ContinuousDoubleAuction

_MAX_MICROGRIDS = 3
_PRIORITY_GAP = 1e-4  # price step between orders of one side, relative to the tariff spread


@dataclass(frozen=True)
class PairMarket:
    """The flat fee, the pair fees (buyer row, seller column) and each agent's worst pair."""

    fee: float
    pair: np.ndarray    # (N, N) $/kWh, agents in env order
    bound: np.ndarray   # (N,) fee + worst pair fee, the narrowing of each agent's band

    @classmethod
    def of(cls, protocol, agents: list[str]) -> PairMarket | None:
        """The market of ``protocol`` (a P2PTradingProtocol), or None without pair fees."""
        pf = getattr(protocol, "pair_fee", None)
        if pf is None:
            return None
        pair = np.array([[pf(b, s) if b != s else 0.0 for s in agents] for b in agents])
        bound = np.array([protocol.fee_bound(a) for a in agents])
        return cls(float(protocol.trading_fee), pair, bound)

    def eligible(self, retail: float, feed_in: float) -> np.ndarray:
        """(N,) whether each agent's band leaves room to trade at a gain."""
        return retail - feed_in > self.bound

    def margin(self, retail: float, feed_in: float) -> np.ndarray:
        """(N, N) $ gained per kWh buyer i buys from seller j instead of the grid."""
        return retail - feed_in - self.fee - self.pair

    def bands(self, retail: float, feed_in: float) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of every agent's limit band, as ``series.price_band`` gives them."""
        return feed_in + 0.5 * self.bound, retail - 0.5 * self.bound


def check_supported(market: PairMarket | None, rule) -> None:
    """``NotImplementedError`` where the env's pairing is not the model's (module docstring)."""
    if market is None:
        return
    n = len(market.bound)
    if n > _MAX_MICROGRIDS:
        raise NotImplementedError(
            f"pair fees with {n} microgrids: two sellers can meet two buyers, and the "
            f"env's greedy pairing in price priority is not always the cheapest one; the "
            f"oracle models pair fees with at most {_MAX_MICROGRIDS} microgrids")
    if type(rule) is ContinuousDoubleAuction:
        raise NotImplementedError("pair fees with the continuous double auction: it pairs "
                                  "orders in arrival order, which the oracle does not model")


def add_pair_rows(m, market: PairMarket, surplus: list[int], deficit: list[int],
                  big: list[float], retail: float, feed_in: float, dt: float) -> list[int]:
    """One step's pairwise trades ``x_ij`` and sides; returns the x columns.

    ``surplus``/``deficit``: each agent's s and g columns (kW); ``big``: a bound on each
    agent's |net| kW (the side binary's big M).
    """
    ok = np.flatnonzero(market.eligible(retail, feed_in))
    if len(ok) < 2:
        return []
    margin = market.margin(retail, feed_in)
    for i in ok:  # one order per agent: a bid or an ask
        side = m.var(0.0, 1.0, integer=True)
        m.row([(surplus[i], 1.0), (side, -big[i])], ub=0.0)
        m.row([(deficit[i], 1.0), (side, big[i])], ub=big[i])
    x = {(i, j): m.var(cost=-float(margin[i, j])) for i in ok for j in ok if i != j}
    for i in ok:
        m.row([(x[i, j], 1.0) for j in ok if j != i] + [(deficit[i], -dt)], ub=0.0)
        m.row([(x[j, i], 1.0) for j in ok if j != i] + [(surplus[i], -dt)], ub=0.0)
    return list(x.values())


def price_actions(market: PairMarket, net_kwh: list[float], retail: float, feed_in: float,
                  eps_kwh: float) -> list[float]:
    """Price actions that make the env's book pair the step's orders greedily by margin.

    The lone order of one side sits at the edge of its band that crosses (an ask at its
    bottom, a bid at its top); the other side's orders are priced strictly in order of
    their margin with it, best first, inside their bands and still crossing.
    """
    n = len(net_kwh)
    net = np.asarray(net_kwh, float)
    ok = market.eligible(retail, feed_in)
    sellers = [i for i in range(n) if ok[i] and net[i] > eps_kwh]
    buyers = [i for i in range(n) if ok[i] and net[i] < -eps_kwh]
    actions = [1.0 if v > 0 else -1.0 for v in net]  # no counterpart: no cross
    if not sellers or not buyers:
        return actions
    if len(sellers) > 1 and len(buyers) > 1:
        raise AssertionError("pair fees: two sellers and two buyers (check_supported)")
    low, high = market.bands(retail, feed_in)
    margin = market.margin(retail, feed_in)
    gap = _PRIORITY_GAP * (retail - feed_in)
    if len(sellers) == 1:
        (s,) = sellers
        actions[s] = -1.0
        floor = low[s]  # every bid must reach the ask
        order = sorted(buyers, key=lambda b: -margin[b, s])  # stable: ties in agent order
        prev = np.inf
        for b in order:
            p = max(min(high[b], prev - gap), low[b], floor)
            actions[b] = _action(p, low[b], high[b])
            prev = p
    else:
        (b,) = buyers
        actions[b] = 1.0
        ceiling = high[b]
        order = sorted(sellers, key=lambda s: -margin[b, s])
        prev = -np.inf
        for s in order:
            p = min(max(low[s], prev + gap), high[s], ceiling)
            actions[s] = _action(p, low[s], high[s])
            prev = p
    return actions


def _action(price: float, low: float, high: float) -> float:
    """The price action in [-1, 1] whose limit (``series.limit_price``) is ``price``."""
    if high <= low:
        return 0.0
    return min(max(2.0 * (price - low) / (high - low) - 1.0, -1.0), 1.0)
