"""The simulator's built-in instruments: stocks, a forex pair, futures and options.

Matching follows IB's reqContractDetails behaviour: every listing that fits the
given fields is returned (a partial option spec returns the whole chain); a
request that must resolve to one contract (market data, bars, orders) gets error
200 when nothing or more than one listing fits.
"""

from __future__ import annotations

import datetime as dt
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from zoneinfo import ZoneInfo

ET = ZoneInfo("US/Eastern")


@dataclass(frozen=True)
class Listing:
    conId: int
    symbol: str
    secType: str
    currency: str
    exchange: str  # routing exchange reported in contract details (SMART, IDEALPRO, CME)
    primaryExchange: str
    localSymbol: str
    tradingClass: str
    longName: str
    minTick: float
    base_price: float
    head: dt.datetime  # earliest data (UTC)
    hours: str  # "equity" | "fx" | "future"
    timeZoneId: str = "US/Eastern"
    lastTradeDate: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    validExchanges: str = "SMART"
    industry: str = ""
    category: str = ""
    subcategory: str = ""
    stockType: str = ""
    underConId: int = 0
    underSymbol: str = ""
    underSecType: str = ""
    marketRuleIds: str = "26"
    daily_volume: int = 50_000_000
    aliases: tuple[str, ...] = field(default=())

    @property
    def expiry(self) -> dt.date | None:
        if not self.lastTradeDate:
            return None
        return dt.datetime.strptime(self.lastTradeDate[:8], "%Y%m%d").date()

    @property
    def data_key(self) -> str:
        """Name used for gap configuration and price paths."""
        return self.localSymbol or self.symbol


def _utc(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, 14, 30, tzinfo=dt.UTC)


_EQ_ORDER_TYPES = "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,GAT,GTC,GTD,LIT,LMT,MIT,MKT,MOC,MTL,NONALGO,OCA,REL,STP,STPLMT,TRAIL,WHATIF"  # noqa: E501


def _stock(
    conId: int, symbol: str, primary: str, name: str, price: float, head: dt.datetime,
    industry: str, category: str, currency: str = "USD", vol: int = 50_000_000,
    trading_class: str | None = None, stock_type: str = "COMMON",
) -> Listing:
    exchanges = f"SMART,{primary},ARCA,BATS,IEX,ISLAND" if currency == "USD" else f"SMART,{primary}"
    return Listing(
        conId=conId, symbol=symbol, secType="STK", currency=currency, exchange="SMART",
        primaryExchange=primary, localSymbol=symbol,
        tradingClass=trading_class or ("NMS" if primary == "NASDAQ" else symbol),
        longName=name, minTick=0.01, base_price=price, head=head, hours="equity",
        timeZoneId="US/Eastern" if currency == "USD" else "America/Toronto",
        validExchanges=exchanges, industry=industry, category=category,
        stockType=stock_type, daily_volume=vol,
    )


STOCKS: tuple[Listing, ...] = (
    _stock(265598, "AAPL", "NASDAQ", "APPLE INC", 230.0, _utc(1980, 12, 12),
           "Technology", "Computers", vol=55_000_000),
    _stock(272093, "MSFT", "NASDAQ", "MICROSOFT CORP", 420.0, _utc(1986, 3, 13),
           "Technology", "Software", vol=22_000_000),
    _stock(3691937, "AMZN", "NASDAQ", "AMAZON.COM INC", 200.0, _utc(1997, 5, 15),
           "Communications", "Internet", vol=40_000_000),
    _stock(756733, "SPY", "ARCA", "SPDR S&P 500 ETF TRUST", 600.0, _utc(1993, 1, 29),
           "Funds", "Equity Fund", vol=60_000_000, stock_type="ETF"),
    _stock(320227571, "QQQ", "NASDAQ", "INVESCO QQQ TRUST SERIES 1", 520.0, _utc(1999, 3, 10),
           "Funds", "Equity Fund", vol=35_000_000, stock_type="ETF"),
    _stock(76792991, "TSLA", "NASDAQ", "TESLA INC", 250.0, _utc(2010, 6, 29),
           "Consumer, Cyclical", "Auto Manufacturers", vol=90_000_000),
    _stock(4815747, "NVDA", "NASDAQ", "NVIDIA CORP", 140.0, _utc(1999, 1, 22),
           "Technology", "Semiconductors", vol=250_000_000),
    _stock(208813719, "GOOGL", "NASDAQ", "ALPHABET INC-CL A", 170.0, _utc(2004, 8, 19),
           "Communications", "Internet", vol=25_000_000),
    _stock(107113386, "META", "NASDAQ", "META PLATFORMS INC-CLASS A", 580.0, _utc(2012, 5, 18),
           "Communications", "Internet", vol=15_000_000),
    _stock(8314, "IBM", "NYSE", "INTL BUSINESS MACHINES CORP", 220.0, _utc(1962, 1, 2),
           "Technology", "Computers", vol=4_000_000),
    _stock(195014116, "SHOP", "NYSE", "SHOPIFY INC - CLASS A", 110.0, _utc(2015, 5, 21),
           "Communications", "Internet", vol=8_000_000),
    _stock(195014192, "SHOP", "TSE", "SHOPIFY INC - CLASS A", 150.0, _utc(2015, 5, 21),
           "Communications", "Internet", currency="CAD", vol=1_500_000),
)

FOREX: tuple[Listing, ...] = (
    Listing(
        conId=12087792, symbol="EUR", secType="CASH", currency="USD", exchange="IDEALPRO",
        primaryExchange="", localSymbol="EUR.USD", tradingClass="EUR.USD",
        longName="European Monetary Union Euro", minTick=0.00005, base_price=1.08,
        head=dt.datetime(2005, 3, 1, tzinfo=dt.UTC), hours="fx", timeZoneId="US/Eastern",
        validExchanges="IDEALPRO", marketRuleIds="239", daily_volume=0,
    ),
)

OPTION_UNDERLYINGS = ("AAPL", "AMZN", "MSFT", "SPY", "QQQ", "TSLA", "NVDA")
FUTURE_ROOTS = ("ES",)


def third_friday(year: int, month: int) -> dt.date:
    d = dt.date(year, month, 15)
    return d + dt.timedelta(days=(4 - d.weekday()) % 7)


def _stable_id(*parts: object, base: int = 500_000_000) -> int:
    return base + zlib.crc32("|".join(str(p) for p in parts).encode()) % 400_000_000


@lru_cache(maxsize=8)
def futures(today: dt.date) -> tuple[Listing, ...]:
    """The next four quarterly ES contracts as of ``today``."""
    out: list[Listing] = []
    y, m = today.year, today.month
    codes = {3: "H", 6: "M", 9: "U", 12: "Z"}
    while len(out) < 4:
        if m in codes:
            exp = third_friday(y, m)
            if exp >= today:
                local = f"ES{codes[m]}{y % 10}"
                out.append(Listing(
                    conId=_stable_id("ES", y, m), symbol="ES", secType="FUT", currency="USD",
                    exchange="CME", primaryExchange="", localSymbol=local, tradingClass="ES",
                    longName="E-mini S&P 500", minTick=0.25, base_price=6000.0,
                    head=dt.datetime.combine(exp - dt.timedelta(days=365), dt.time(14, 30),
                                             tzinfo=dt.UTC),
                    hours="future", timeZoneId="US/Central", lastTradeDate=exp.strftime("%Y%m%d"),
                    multiplier="50", validExchanges="CME", industry="Indices",
                    category="Broad Range Equity Index", underConId=11004968, underSymbol="ES",
                    underSecType="IND", marketRuleIds="67", daily_volume=1_500_000,
                ))
        m += 1
        if m > 12:
            m, y = 1, y + 1
    return tuple(out)


def option_expirations(today: dt.date) -> list[dt.date]:
    """Weekly Fridays for eight weeks, then monthly third Fridays out to a year."""
    exps: set[dt.date] = set()
    friday = today + dt.timedelta(days=(4 - today.weekday()) % 7)
    for i in range(8):
        exps.add(friday + dt.timedelta(weeks=i))
    y, m = today.year, today.month
    for _ in range(12):
        tf = third_friday(y, m)
        if tf >= today:
            exps.add(tf)
        m += 1
        if m > 12:
            m, y = 1, y + 1
    return sorted(exps)


def option_strikes(price: float) -> list[float]:
    step = 5.0 if price >= 100 else 2.5
    center = round(price / step) * step
    return [center + step * i for i in range(-20, 21) if center + step * i > 0]


@lru_cache(maxsize=8)
def options(today: dt.date) -> tuple[Listing, ...]:
    """The option chains on OPTION_UNDERLYINGS as of ``today`` (strikes around the base price)."""
    out: list[Listing] = []
    for und in OPTION_UNDERLYINGS:
        u = next(s for s in STOCKS if s.symbol == und)
        for exp in option_expirations(today):
            for strike in option_strikes(u.base_price):
                for right in ("C", "P"):
                    ymd = exp.strftime("%y%m%d")
                    local = f"{und:<6}{ymd}{right}{round(strike * 1000):08d}"
                    out.append(Listing(
                        conId=_stable_id(und, exp, strike, right, base=600_000_000),
                        symbol=und, secType="OPT", currency="USD", exchange="SMART",
                        primaryExchange="", localSymbol=local, tradingClass=und,
                        longName=u.longName, minTick=0.01, base_price=0.0,
                        head=dt.datetime.combine(exp - dt.timedelta(days=270), dt.time(14, 30),
                                                 tzinfo=dt.UTC),
                        hours="equity", lastTradeDate=exp.strftime("%Y%m%d"), strike=strike,
                        right=right, multiplier="100",
                        validExchanges="SMART,AMEX,BATS,BOX,CBOE,CBOE2,EDGX,EMERALD,ISE,MIAX,NASDAQOM,PHLX,PSE",
                        industry=u.industry, category=u.category, underConId=u.conId,
                        underSymbol=und, underSecType="STK", marketRuleIds="32",
                        daily_volume=2_000,
                    ))
    return tuple(out)


@lru_cache(maxsize=8)
def _listed(today: dt.date) -> tuple[tuple[Listing, ...], dict[int, Listing]]:
    """Every listing as of ``today``, and an index by conId (the first of a conId wins):
    IB answers a lookup in milliseconds, so the simulator must not scan 10,000 options
    for each one (a scan held its event loop, and so the arrival times its pacing rules
    judge by, for a tenth of a second a lookup)."""
    every = STOCKS + FOREX + futures(today) + options(today)
    index: dict[int, Listing] = {}
    for lst in every:
        index.setdefault(lst.conId, lst)
    return every, index


OPTION_EXCHANGES = ("SMART", "CBOE", "ISE", "PHLX", "AMEX", "NASDAQOM")


@dataclass
class Query:
    """The contract fields a client sent (the C12 block plus includeExpired)."""

    conId: int = 0
    symbol: str = ""
    secType: str = ""
    lastTradeDate: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primaryExchange: str = ""
    currency: str = ""
    localSymbol: str = ""
    tradingClass: str = ""
    includeExpired: bool = False

    def describe(self) -> str:
        return self.localSymbol or self.symbol or str(self.conId)


_RIGHTS = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}


class Universe:
    """Lookup over the built-in listings; options and futures roll with ``today``."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now

    @property
    def today(self) -> dt.date:
        """The exchange date (US/Eastern) of the simulated clock."""
        return dt.datetime.fromtimestamp(self._now(), ET).date()

    def all(self) -> tuple[Listing, ...]:
        return _listed(self.today)[0]

    def by_conid(self, conId: int) -> Listing | None:
        return _listed(self.today)[1].get(conId)

    def underlying(self, listing: Listing) -> Listing:
        if listing.underConId:
            und = self.by_conid(listing.underConId)
            if und is not None:
                return und
        return listing

    def match(self, q: Query) -> list[Listing]:
        if q.conId:
            lst = self.by_conid(q.conId)
            if lst is None or (q.exchange and not _exchange_ok(lst, q.exchange)):
                return []
            return [lst]
        if q.secType == "CASH" and "." in q.symbol and not q.currency:
            sym, _, cur = q.symbol.partition(".")
            q = replace(q, symbol=sym, currency=cur)
        pool: tuple[Listing, ...]
        if q.secType == "OPT":
            pool = options(self.today)
        elif q.secType == "FUT":
            pool = futures(self.today)
        else:
            pool = STOCKS + FOREX
        out = []
        for lst in pool:
            if q.secType and lst.secType != q.secType:
                continue
            if q.symbol and lst.symbol != q.symbol.upper():
                continue
            if q.localSymbol and lst.localSymbol.replace(" ", "") != q.localSymbol.replace(" ", ""):
                continue
            if q.currency and lst.currency != q.currency.upper():
                continue
            if q.exchange and not _exchange_ok(lst, q.exchange):
                continue
            if q.primaryExchange and lst.primaryExchange and \
                    lst.primaryExchange != _canon_exchange(q.primaryExchange):
                continue
            if q.tradingClass and lst.tradingClass != q.tradingClass:
                continue
            if q.multiplier and lst.multiplier and float(q.multiplier) != float(lst.multiplier):
                continue
            if q.lastTradeDate and not lst.lastTradeDate.startswith(q.lastTradeDate):
                continue
            if q.strike and abs(lst.strike - q.strike) > 1e-6:
                continue
            if q.right and lst.right != _RIGHTS.get(q.right.upper(), "?"):
                continue
            if not q.includeExpired and lst.expiry is not None and lst.expiry < self.today:
                continue
            out.append(lst)
        return out


def _canon_exchange(ex: str) -> str:
    ex = ex.upper()
    return {"ISLAND": "NASDAQ", "GLOBEX": "CME"}.get(ex, ex)


def _exchange_ok(lst: Listing, exchange: str) -> bool:
    ex = _canon_exchange(exchange)
    valid = {_canon_exchange(e) for e in lst.validExchanges.split(",")}
    return ex in valid or ex == lst.primaryExchange or ex == lst.exchange
