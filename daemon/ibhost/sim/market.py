"""Bars and quotes for the simulator's instruments, built on the price model and sessions."""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from .hours import bar_windows, is_open
from .prices import F64, PriceModel, black_scholes, expiry_epoch, implied_vol, round_tick
from .universe import Listing, Universe

MONTH = 2592000
WEEK = 604800
DAY = 86400


@dataclass
class Bar:
    start: int  # epoch seconds (intraday) or session-date midnight UTC (daily and up)
    label: str  # date text as IB sends it for formatDate 1 (daily+) or "" for intraday
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int


@dataclass
class Quote:
    bid: float
    ask: float
    last: float
    bid_size: float
    ask_size: float
    last_size: float
    volume: float
    open: float
    high: float
    low: float
    close: float


class Market:
    def __init__(self, universe: Universe, seed: int = 0) -> None:
        self.universe = universe
        self.model = PriceModel(seed)
        self.missing: dict[str, list[tuple[int, int]]] = {}

    # --- prices ----------------------------------------------------------------------

    def mid(self, lst: Listing, t: F64) -> F64:
        if lst.secType == "OPT":
            und = self.universe.underlying(lst)
            s = self.model.path(und, t)
            tau = (expiry_epoch(lst) - t) / (365.0 * DAY)
            vol = implied_vol(lst, float(s[0]) if len(s) else und.base_price, float(t[0]))
            price = black_scholes(lst.right, s, lst.strike, tau, vol)["price"]
            return np.maximum(price, 0.01)
        return self.model.path(lst, t)

    def quote(self, lst: Listing, now: float) -> Quote:
        t = np.array([now], dtype=np.float64)
        mid = float(self.mid(lst, t)[0])
        spread = float(self.model.spread(lst, np.array([mid]))[0])
        if lst.secType == "OPT":
            spread = max(0.01, round(mid * 0.02, 2))
        tick = lst.minTick
        bid = float(round_tick(np.array([mid - spread / 2]), tick)[0])
        ask = max(float(round_tick(np.array([mid + spread / 2]), tick)[0]), bid + tick)
        last = float(round_tick(np.array([mid]), tick)[0])
        day_start = now - (now % DAY)
        day = self.mid(lst, np.array([day_start + 13.5 * 3600, day_start - 4 * 3600]))
        k = np.array([int(now // 60)], dtype=np.int64)
        u = self.model.uniform(lst.data_key, "size", k)
        size = float(100 * (1 + int(u[0] * 9)))
        vol = float(int(lst.daily_volume * min(1.0, (now % DAY) / DAY)))
        return Quote(
            bid=bid, ask=round(ask, 8), last=last, bid_size=size, ask_size=size + 100,
            last_size=100.0, volume=vol,
            open=float(round_tick(day[:1], tick)[0]),
            high=float(round_tick(np.array([max(last, float(day.max())) + tick * 10]), tick)[0]),
            low=float(round_tick(np.array([min(last, float(day.min())) - tick * 10]), tick)[0]),
            close=float(round_tick(day[1:], tick)[0]),
        )

    def greeks(self, lst: Listing, now: float, option_price: float) -> dict[str, float]:
        und = self.universe.underlying(lst)
        s = float(self.model.path(und, np.array([now]))[0])
        vol = implied_vol(lst, s, now)
        tau = (expiry_epoch(lst) - now) / (365.0 * DAY)
        g = black_scholes(lst.right, np.array([s]), lst.strike, np.array([tau]), vol)
        return {
            "iv": vol, "delta": float(g["delta"][0]), "optPrice": option_price,
            "pvDividend": 0.0, "gamma": float(g["gamma"][0]), "vega": float(g["vega"][0]),
            "theta": float(g["theta"][0]), "undPrice": s,
        }

    def hist_vol(self, lst: Listing) -> float:
        return 0.18 + (zlib.crc32(lst.data_key.encode()) % 100) / 1000.0

    # --- bars ------------------------------------------------------------------------

    def bar_windows(
        self, lst: Listing, start: int, end: int, bar: int, rth: bool
    ) -> list[tuple[int, int, str]]:
        """(from, to, label) windows for bars whose start falls in [start, end)."""
        return bar_windows(lst.hours, start, end, bar, rth)

    def bars(
        self, lst: Listing, start: int, end: int, bar: int, what: str, rth: bool,
        until: int | None = None,
    ) -> list[Bar]:
        """Bars starting in [start, end). ``until`` (now, exclusive): a bar still in
        progress is built from the prices up to then only, as IB's forming bar is, so
        it changes as time passes and never shows a price from after now."""
        wins = self.bar_windows(lst, start, end, bar, rth)
        if until is not None:
            wins = [(w0, max(w0 + 1, min(w1, until)), label) for w0, w1, label in wins]
        lo = int(lst.head.timestamp())
        hi = int(expiry_epoch(lst)) if lst.expiry else None
        gaps = self.missing.get(lst.data_key, [])
        wins = [
            w for w in wins
            if w[0] >= lo and (hi is None or w[0] < hi)
            and not any(g0 <= w[0] < g1 for g0, g1 in gaps)
        ]
        if not wins:
            return []
        a = np.array([w[0] for w in wins], dtype=np.float64)
        b = np.array([w[1] for w in wins], dtype=np.float64)
        n_samples = 6 if bar <= 300 else 24
        frac = np.linspace(0.0, 1.0, n_samples)
        t = a[:, None] + (b - a - 1)[:, None] * frac[None, :]
        mid = self.mid(lst, t.ravel()).reshape(t.shape)
        tick = lst.minTick
        k = (a // max(bar, 1)).astype(np.int64)
        u1 = self.model.uniform(lst.data_key, f"hi{bar}", k)
        u2 = self.model.uniform(lst.data_key, f"lo{bar}", k)
        u3 = self.model.uniform(lst.data_key, f"vol{bar}", k)
        wiggle = 0.0004 * np.sqrt(np.maximum(b - a, 1) / 60.0) / 4
        half = (self.model.spread(lst, mid) / 2) if what in ("BID", "ASK", "BID_ASK") else 0.0
        if what == "BID":
            px = mid - half
        elif what == "ASK":
            px = mid + half
        else:
            px = mid
        o = px[:, 0]
        c = px[:, -1]
        h = px.max(axis=1) * (1 + wiggle * u1)
        low = px.min(axis=1) * (1 - wiggle * u2)
        if what == "BID_ASK":
            bid = mid - half
            ask = mid + half
            o = bid.mean(axis=1)
            c = ask.mean(axis=1)
            h = ask.max(axis=1)
            low = bid.min(axis=1)
        o, c = round_tick(o, tick), round_tick(c, tick)
        h = np.maximum(round_tick(h, tick), np.maximum(o, c))
        low = np.minimum(round_tick(low, tick), np.minimum(o, c))
        if what == "TRADES" and lst.daily_volume:
            frac_day = (b - a) / 23400.0
            vol = np.floor(lst.daily_volume * frac_day * (0.5 + u3))
            if not rth and lst.hours == "equity":
                in_rth = np.array([is_open("equity", int(x), True) for x in a]) \
                    if bar < DAY else np.ones_like(a, dtype=bool)
                vol = np.where(in_rth, vol, np.floor(vol * 0.05))
            wap = np.round((h + low + c) / 3, 4)
            count = np.maximum(1, vol // 150).astype(np.int64)
        else:
            vol = np.zeros_like(a)
            wap = np.zeros_like(a)
            count = np.zeros_like(a, dtype=np.int64)
        return [
            Bar(int(w[0]), w[2], float(o[i]), float(h[i]), float(low[i]), float(c[i]),
                float(vol[i]), float(wap[i]), int(count[i]))
            for i, w in enumerate(wins)
        ]


def format_bar_date(bar: Bar, bar_size: int, format_date: int, tz_name: str) -> str:
    if bar_size >= DAY:
        return bar.label
    if format_date == 2:
        return str(bar.start)
    tz = ZoneInfo(tz_name)
    return dt.datetime.fromtimestamp(bar.start, tz).strftime("%Y%m%d %H:%M:%S ") + tz_name
