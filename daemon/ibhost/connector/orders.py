"""Orders and fills: place, cancel, find by orderRef, open orders and executions.

Placing and cancelling go through the one paced path to IB (``calls.IbCalls``);
open orders and executions are read from the library's state, which IB's pushes
keep current, unless the caller asks IB itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from .. import models
from ..errors import IbhostError, bad_request
from .calls import IbCalls
from .contracts import ContractSpec, contract_ref
from .values import _num, _utc

# what IB has not acknowledged yet
PENDING = ("PendingSubmit", "ApiPending", "")


class OrderRequests:
    """Orders through ``calls``; ``resolve`` qualifies a contract, ``details_of``
    gives a conId's contract details when they are known (for its minimum tick)."""

    def __init__(self, calls: IbCalls, resolve: Callable[[ContractSpec], Awaitable[Any]],
                 details_of: Callable[[int], Any]) -> None:
        self.calls = calls
        self.session = calls.session
        self.lib = calls.lib
        self.ib = calls.ib
        self.resolve = resolve
        self.details_of = details_of
        self._placing: dict[str, asyncio.Future[models.PlacedOrder]] = {}  # orderRef -> answer


    @staticmethod
    def _trade_dict(tr: Any) -> models.Order:
        """The library's Trade as the ``Order`` model."""
        o, s, c = tr.order, tr.orderStatus, tr.contract
        return models.Order(
            orderId=o.orderId, permId=o.permId or s.permId, clientId=o.clientId,
            **contract_ref(c), exchange=c.exchange, account=o.account or None,
            action=o.action, quantity=o.totalQuantity, orderType=o.orderType,
            limitPrice=_num(o.lmtPrice), stopPrice=_num(o.auxPrice), tif=o.tif,
            orderRef=o.orderRef, status=s.status, filled=s.filled,
            remaining=s.remaining, avgFillPrice=_num(s.avgFillPrice) or 0.0,
            log=[models.OrderLogEntry(time=e.time.isoformat(), status=e.status,
                                      message=e.message, errorCode=e.errorCode)
                 for e in tr.log[-10:]],
        )

    @staticmethod
    def _placed(order: models.Order, duplicate: bool) -> models.PlacedOrder:
        return models.PlacedOrder(**msgspec.structs.asdict(order), duplicate=duplicate)

    def find_by_ref(self, order_ref: str) -> Any | None:
        for tr in self.ib.trades():
            if tr.order.orderRef == order_ref:
                return tr
        return None

    def order_by_ref(self, order_ref: str, *, order_id: int = 0, client_id: int | None = None,
                     perm_id: int = 0) -> models.Order:
        """The order placed with ``order_ref`` as IB last reported it. Many orders may
        share a ref (an orderRef without dedupe is a label): ``perm_id``, else
        ``order_id`` (and ``client_id``) pick one; without them the newest. No request
        goes to IB: the library keeps every order's status current while connected,
        which is why a connection that is not ready answers 503, not an old status."""
        self.session.require_ready()
        trades = [t for t in self.ib.trades() if t.order.orderRef == order_ref]
        found = [t for t in trades if perm_id and (t.order.permId or t.orderStatus.permId)
                 == perm_id]
        if not found and order_id:
            found = [t for t in trades if t.order.orderId == order_id
                     and (client_id is None or t.order.clientId == client_id)]
        if not found and not (perm_id or order_id):
            found = trades
        if not found:
            raise IbhostError("not_found", f"no order with orderRef {order_ref!r}",
                              field="orderRef")
        return self._trade_dict(found[-1])

    async def place_order(self, spec: ContractSpec, *, action: str, quantity: float,
                          order_type: str, limit: float | None, stop: float | None, tif: str,
                          order_ref: str, outside_rth: bool, wait: float = 5.0,
                          dedupe: bool = True) -> models.PlacedOrder:
        """Place one order. With ``dedupe`` (the default) an order whose orderRef is
        already at IB, or being placed right now, is not placed again: orderRef then
        carries an idempotency key. Without it orderRef is only a label (many orders
        may share it)."""
        kw: dict[str, Any] = dict(action=action, quantity=quantity, order_type=order_type,
                                  limit=limit,
                  stop=stop, tif=tif, order_ref=order_ref, outside_rth=outside_rth, wait=wait,
                  dedupe=dedupe)
        if not (order_ref and dedupe):
            return await self._place(spec, **kw)
        pending = self._placing.get(order_ref)
        if pending is not None:  # a retry while the first is still on its way
            return msgspec.structs.replace(await asyncio.shield(pending), duplicate=True)
        fut: asyncio.Future[models.PlacedOrder] = asyncio.get_running_loop().create_future()
        self._placing[order_ref] = fut
        try:
            result = await self._place(spec, **kw)
            fut.set_result(result)
            return result
        except BaseException as e:
            fut.set_exception(e if isinstance(e, Exception) else
                              IbhostError("unavailable", "order placement cancelled"))
            fut.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            self._placing.pop(order_ref, None)

    async def _place(self, spec: ContractSpec, *, action: str, quantity: float,
                     order_type: str, limit: float | None, stop: float | None, tif: str,
                     order_ref: str, outside_rth: bool, wait: float,
                     dedupe: bool) -> models.PlacedOrder:
        self.session.hold_orders()
        c = await self.resolve(spec)
        tick = getattr(self.details_of(c.conId), "minTick", 0.0) or 0.0
        for name, price in (("limitPrice", limit), ("stopPrice", stop)):
            if price is not None and tick and price < tick:
                raise bad_request(name, f"{price:g} is below the contract's minimum tick "
                                        f"({tick:g})")
        if order_ref and dedupe:
            existing = self.find_by_ref(order_ref)
            if existing is not None:
                return self._placed(self._trade_dict(existing), True)
        order = self.lib.Order(action=action, totalQuantity=quantity, orderType=order_type,
                               tif=tif, orderRef=order_ref, outsideRth=outside_rth)
        if limit is not None:
            order.lmtPrice = limit
        if stop is not None:
            order.auxPrice = stop
        if self.session.ibcfg.account:
            order.account = self.session.ibcfg.account

        async def place() -> Any:
            return self.ib.placeOrder(c, order)

        connected_since = self.session.diag.connectedSince
        trade = await self.calls.call("place order", place)
        loop = asyncio.get_running_loop()
        end = loop.time() + wait

        def lost() -> bool:  # the connection the order left on is gone
            return not self.ib.isConnected() or \
                self.session.diag.connectedSince != connected_since

        # the library offers no awaitable for a status change
        while trade.orderStatus.status in PENDING and loop.time() < end and \
                not lost():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if trade.orderStatus.status in PENDING and lost():
            # IB never acknowledged it, and the library forgets the connection's orders:
            # an answer of "PendingSubmit" would stand for an order that may not exist
            raise IbhostError(
                "unavailable", "the connection to IB was lost before IB acknowledged "
                "the order, so whether it was placed is not known; a retry with the same "
                "Idempotency-Key (or orderRef) places it at most once",
                extra={"orderId": trade.order.orderId, "orderRef": order_ref})
        # PreSubmitted is often followed at once by the fill of a marketable order
        # (IB sends the acknowledgement and the execution separately): let it settle.
        settle = min(end, loop.time() + 0.5)
        while trade.orderStatus.status == "PreSubmitted" and loop.time() < settle:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        errors = [e for e in trade.log if e.errorCode and e.errorCode not in (202, 399)]
        if trade.orderStatus.status in ("Cancelled", "ApiCancelled", "Inactive") and errors:
            err = errors[-1]
            raise IbhostError("rejected", f"IB rejected the order: {err.message}",
                              ib_code=err.errorCode,
                              extra={"order": models.plain(self._trade_dict(trade))})
        return self._placed(self._trade_dict(trade), False)

    async def cancel_order(self, order_id: int, wait: float = 5.0) -> models.Order:
        trade = next((t for t in self.ib.trades() if t.order.orderId == order_id), None)
        if trade is None:
            raise IbhostError("not_found", f"no order {order_id}", field="orderId")
        if trade.isDone():
            raise IbhostError("conflict", f"order {order_id} is already "
                              f"{trade.orderStatus.status}",
                              extra={"order": models.plain(self._trade_dict(trade))})

        async def cancel() -> Any:
            return self.ib.cancelOrder(trade.order)

        await self.calls.call("cancel order", cancel)
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while not trade.isDone() and loop.time() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return self._trade_dict(trade)

    def open_orders(self) -> list[models.Order]:
        """This connection's open orders, from the library: IB keeps their status
        current by pushes, so no request goes to IB. (Orders of other clients are not
        pushed to this one; ``all_open_orders`` asks IB for them.)"""
        self.session.require_ready()
        cid = self.session.diag.clientId
        return [self._trade_dict(t) for t in self.ib.openTrades()
                if cid == 0 or t.order.clientId == cid]

    async def all_open_orders(self) -> list[models.Order]:
        """Every client's open orders, asked of IB (reqAllOpenOrders)."""
        trades = await self.calls.call("open orders", self.ib.reqAllOpenOrdersAsync)
        return [self._trade_dict(t) for t in trades]

    async def executions(self, *, symbol: str = "", sec_type: str = "", side: str = "",
                         since: dt.datetime | None = None, client_id: int = 0,
                         ask_ib: bool = False) -> list[models.Execution]:
        """Executions matching IB's filter fields. From the library unless ``ask_ib``:
        its sync at connect asked IB for every execution IB keeps (an empty filter:
        whatever any filter could match, from before the connect too), and IB pushes
        each new one of this client since. Only other clients' later fills need IB."""
        if ask_ib:
            f = self.lib.ExecutionFilter(
                clientId=client_id, symbol=symbol, secType=sec_type, side=side,
                time=since.astimezone(dt.UTC).strftime("%Y%m%d-%H:%M:%S") if since else "")
            fills = await self.calls.call("executions", lambda: self.ib.reqExecutionsAsync(f))
        else:
            self.session.require_ready()
            # IB's filter: side BUY/SELL matches BOT/SLD; time is "at or after"
            wanted = {"BUY": "BOT", "SELL": "SLD"}.get(side, side)
            fills = [fl for fl in self.ib.fills()
                     if (not symbol or fl.contract.symbol == symbol)
                     and (not sec_type or fl.contract.secType == sec_type)
                     and (not wanted or fl.execution.side == wanted)
                     and (not client_id or fl.execution.clientId == client_id)
                     and (since is None or _utc(fl.execution.time) >= since)]
        # commission reports attach to the library's own fill records, keyed by execId
        # (fills read from the library are those records already)
        known = {fl.execution.execId: fl.commissionReport
                 for fl in self.ib.fills()} if ask_ib else {}
        out = []
        for fl in fills:
            e, c = fl.execution, fl.contract
            cr = known.get(e.execId) or fl.commissionReport
            out.append(models.Execution(
                execId=e.execId, time=_utc(e.time).isoformat(), **contract_ref(c),
                side=e.side, shares=e.shares, price=e.price, avgPrice=e.avgPrice,
                cumQty=e.cumQty, orderId=e.orderId, permId=e.permId,
                clientId=e.clientId, orderRef=e.orderRef, exchange=e.exchange,
                commission=_num(cr.commission) if cr and cr.execId else None,
                realizedPNL=_num(cr.realizedPNL) if cr and cr.execId else None,
            ))
        return out
