"""Account requests: summary, portfolio and PnL, through the same pacing and error path.

IB keeps account-summary and PnL subscriptions open and pushes updates; a
request here subscribes, takes the first complete answer and cancels (PnL), so
no subscription outlives the call. IB allows two account-summary subscriptions
at a time (error 322), so the summary is requested once and then read from the
library's live copy.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .. import models
from ..errors import IbhostError
from .calls import IbCalls
from .contracts import contract_ref
from .pacing import BACKGROUND, INTERACTIVE
from .values import _num


def _value(v: str) -> float | str:
    f = _num(v)
    return v if f is None else f


class AccountRequests:
    def __init__(self, calls: IbCalls) -> None:
        self.calls = calls
        self._summary_lock = asyncio.Lock()
        self._summary_loaded = False
        # the library allows one PnL subscription per (account, model[, conId]) at a time
        self._pnl_lock = asyncio.Lock()
        calls.session.on_resubscribe.append(self._forget_summary)

    def _forget_summary(self) -> None:
        """A new connection (or 1101) starts without IB's summary subscription."""
        self._summary_loaded = False

    def account(self, given: str = "") -> str:
        """The account to ask about: the given one, the configured one, or the first managed."""
        session = self.calls.session
        if given:
            if session.diag.accounts and given not in session.diag.accounts:
                raise IbhostError("not_found", "account: no such account in this login",
                                  field="account")
            return given
        if session.ibcfg.account:
            return session.ibcfg.account
        if not session.diag.accounts:
            raise IbhostError("unavailable", "IB has not reported the managed accounts yet")
        return session.diag.accounts[0]

    async def warm(self) -> None:
        """Subscribe to the summary at background priority once a connection is
        ready, so that callers read the library's copy without waiting on IB."""
        await self._load(BACKGROUND)

    async def _load(self, priority: int) -> None:
        async with self._summary_lock:
            if not self._summary_loaded:
                await self.calls.call("account summary", self.calls.ib.accountSummaryAsync,
                                     priority=priority)
                self._summary_loaded = True

    async def summary(self) -> list[models.AccountValue]:
        """Every tag IB reports, from the library's live copy (IB pushes changes to
        the subscription made once per connection)."""
        ib = self.calls.ib
        if not self._summary_loaded:
            await self._load(INTERACTIVE)
        self.calls.session.require_ready()
        return [models.AccountValue(account=v.account, tag=v.tag, value=_value(v.value),
                                    currency=v.currency)
                for v in ib.wrapper.acctSummary.values()]

    def portfolio(self) -> list[models.PortfolioItem]:
        """The library's live portfolio (IB pushes it after reqAccountUpdates at connect)."""
        self.calls.session.require_ready()
        out = []
        for p in self.calls.ib.portfolio():
            out.append(models.PortfolioItem(
                account=p.account, **contract_ref(p.contract), position=p.position,
                marketPrice=_num(p.marketPrice), marketValue=_num(p.marketValue),
                averageCost=_num(p.averageCost), unrealizedPNL=_num(p.unrealizedPNL),
                realizedPNL=_num(p.realizedPNL)))
        return out

    async def pnl(self, account: str = "", model: str = "", con_id: int = 0,
                  wait: float = 3.0) -> models.Pnl:
        """Subscribe, wait for IB's first PnL message, cancel."""
        ib = self.calls.ib
        acct = self.account(account)

        async def once() -> Any:
            obj = (ib.reqPnLSingle(acct, model, con_id) if con_id else ib.reqPnL(acct, model))
            try:
                loop = asyncio.get_running_loop()
                end = loop.time() + wait
                while _num(obj.dailyPnL) is None and _num(obj.unrealizedPnL) is None \
                        and loop.time() < end:  # noqa: ASYNC110 - the library offers no awaitable
                    await asyncio.sleep(0.02)
                return obj
            finally:
                if self.calls.session.usable:
                    if con_id:
                        ib.cancelPnLSingle(acct, model, con_id)
                    else:
                        ib.cancelPnL(acct, model)

        async with self._pnl_lock:
            obj = await self.calls.call("pnl", once, timeout=wait + 5.0)
        pnl = models.Pnl(account=acct, modelCode=model, dailyPnL=_num(obj.dailyPnL),
                         unrealizedPnL=_num(obj.unrealizedPnL),
                         realizedPnL=_num(obj.realizedPnL))
        if con_id:
            pnl.conId, pnl.position, pnl.value = con_id, _num(obj.position), _num(obj.value)
        return pnl
