"""What a gateway remembers between connections: orders, fills, positions, cash.

All of it is lost on a simulated restart (``Broker()`` anew).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

from .universe import Listing

START_CASH = 1_000_000.0


@dataclass
class SimOrder:
    orderId: int
    clientId: int
    permId: int
    listing: Listing
    action: str  # BUY | SELL
    totalQuantity: float
    orderType: str  # LMT | MKT | STP | STP LMT
    lmtPrice: float | None
    auxPrice: float | None
    tif: str
    account: str
    orderRef: str
    outsideRth: bool
    transmit: bool
    status: str = "PendingSubmit"
    filled: float = 0.0
    avgFillPrice: float = 0.0
    lastFillPrice: float = 0.0
    completedTime: str = ""
    completedStatus: str = ""

    @property
    def remaining(self) -> float:
        return self.totalQuantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in ("PendingSubmit", "PreSubmitted", "Submitted")


@dataclass
class Execution:
    execId: str
    order: SimOrder
    time: dt.datetime
    shares: float
    price: float
    cumQty: float
    avgPrice: float
    commission: float
    realizedPNL: float | None


@dataclass
class Position:
    listing: Listing
    position: float = 0.0
    avgCost: float = 0.0  # per unit including multiplier, as IB reports it


@dataclass
class Broker:
    account: str = "DU1234567"
    cash: float = START_CASH
    realized: float = 0.0
    orders: dict[tuple[int, int], SimOrder] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    positions: dict[int, Position] = field(default_factory=dict)
    next_ids: dict[int, int] = field(default_factory=dict)
    _perm: itertools.count[int] = field(default_factory=lambda: itertools.count(1_800_000_001))
    _exec: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_valid_id(self, client_id: int) -> int:
        return self.next_ids.get(client_id, 1)

    def use_id(self, client_id: int, order_id: int) -> None:
        self.next_ids[client_id] = max(self.next_valid_id(client_id), order_id + 1)

    def new_perm_id(self) -> int:
        return next(self._perm)

    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        return [
            o for o in self.orders.values()
            if o.is_open and (client_id is None or o.clientId == client_id)
        ]

    def completed_orders(self) -> list[SimOrder]:
        return [o for o in self.orders.values() if not o.is_open]

    def fill(self, order: SimOrder, price: float, now: dt.datetime) -> Execution:
        """Fill the whole remaining quantity at ``price`` and book it."""
        qty = order.remaining
        lst = order.listing
        mult = float(lst.multiplier or 1)
        signed = qty if order.action == "BUY" else -qty
        commission = max(1.0, round(0.005 * qty, 2)) if lst.secType == "STK" else round(
            0.65 * qty, 2
        )
        pos = self.positions.setdefault(lst.conId, Position(lst))
        realized: float | None = None
        if pos.position and (pos.position > 0) != (signed > 0):
            closing = min(abs(signed), abs(pos.position))
            per_unit_cost = pos.avgCost / mult
            direction = 1 if pos.position > 0 else -1
            realized = round(direction * closing * (price - per_unit_cost) * mult - commission, 2)
            self.realized += realized
        new_pos = pos.position + signed
        if new_pos == 0:
            pos.avgCost = 0.0
        elif pos.position == 0 or (pos.position > 0) != (new_pos > 0):
            pos.avgCost = price * mult + commission / abs(new_pos)
        elif (pos.position > 0) == (signed > 0):
            pos.avgCost = (pos.avgCost * abs(pos.position) + price * mult * qty + commission) / abs(
                new_pos
            )
        pos.position = new_pos
        self.cash -= signed * price * mult + commission
        total = order.avgFillPrice * order.filled + price * qty
        order.filled += qty
        order.avgFillPrice = total / order.filled
        order.lastFillPrice = price
        order.status = "Filled"
        order.completedStatus = "Filled"
        order.completedTime = now.strftime("%Y%m%d %H:%M:%S UTC")
        n = next(self._exec)
        ex = Execution(
            execId=f"0000e0d5.{int(now.timestamp()):08x}.01.{n:02d}",
            order=order, time=now, shares=qty, price=price, cumQty=order.filled,
            avgPrice=order.avgFillPrice, commission=commission, realizedPNL=realized,
        )
        self.executions.append(ex)
        return ex

    def account_values(self, marks: dict[int, float]) -> list[tuple[str, str, str]]:
        stock_value = sum(
            p.position * marks.get(c, p.avgCost) * float(p.listing.multiplier or 1)
            for c, p in self.positions.items()
        )
        net = self.cash + stock_value
        unrealized = sum(
            p.position * marks.get(c, p.avgCost) * float(p.listing.multiplier or 1)
            - p.position * p.avgCost
            for c, p in self.positions.items()
        )
        vals = [
            ("AccountCode", self.account, ""),
            ("AccountType", "INDIVIDUAL", ""),
            ("Currency", "USD", "USD"),
            ("TotalCashValue", f"{self.cash:.2f}", "USD"),
            ("CashBalance", f"{self.cash:.2f}", "USD"),
            ("NetLiquidation", f"{net:.2f}", "USD"),
            ("GrossPositionValue", f"{abs(stock_value):.2f}", "USD"),
            ("BuyingPower", f"{max(0.0, net) * 4:.2f}", "USD"),
            ("AvailableFunds", f"{max(0.0, net - abs(stock_value) * 0.25):.2f}", "USD"),
            ("ExcessLiquidity", f"{max(0.0, net - abs(stock_value) * 0.25):.2f}", "USD"),
            ("RealizedPnL", f"{self.realized:.2f}", "USD"),
            ("UnrealizedPnL", f"{unrealized:.2f}", "USD"),
        ]
        return vals
