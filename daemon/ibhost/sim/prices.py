"""Deterministic, plausible prices: a smooth multi-scale noise path per instrument.

``price(t)`` depends only on (seed, instrument, t), so the same request always
gets the same bars, and a bar depends only on its own start and size: bars
fetched in chunks equal bars fetched at once. Options are priced with
Black-Scholes on the underlying's path.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import numpy.typing as npt

from .universe import Listing

F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]

# (period in seconds, amplitude of log-price)
_SCALES: tuple[tuple[float, float], ...] = (
    (86400.0 * 120, 0.20),
    (86400.0 * 10, 0.06),
    (86400.0, 0.02),
    (3600.0, 0.006),
    (300.0, 0.0025),
    (60.0, 0.001),
    (10.0, 0.0003),
)
_M = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: U64) -> U64:
    """splitmix64 finaliser, vectorised."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M
        return x ^ (x >> np.uint64(31))


def _unit(key: int, k: npt.NDArray[np.int64]) -> F64:
    """Hash (key, k) to uniform floats in [-1, 1)."""
    with np.errstate(over="ignore"):
        h = _mix(k.astype(np.uint64) ^ np.uint64(key))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) * 2.0 - 1.0


def _key(seed: int, name: str, salt: str = "") -> int:
    return (zlib.crc32(f"{name}|{salt}".encode()) << 20) ^ (seed * 0x9E3779B1) & 0xFFFFFFFFFFFF


class PriceModel:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def log_noise(self, name: str, t: F64) -> F64:
        total = np.zeros_like(t)
        for i, (period, amp) in enumerate(_SCALES):
            key = _key(self.seed, name, str(i))
            x = t / period
            k = np.floor(x).astype(np.int64)
            f = x - k
            f = f * f * (3 - 2 * f)
            a = _unit(key, k)
            b = _unit(key, k + 1)
            total += amp * (a + (b - a) * f)
        return total

    def path(self, lst: Listing, t: F64) -> F64:
        """Mid price of a stock, future or forex pair at epoch seconds ``t``."""
        return lst.base_price * np.exp(self.log_noise(lst.data_key, t))

    def spread(self, lst: Listing, mid: F64) -> F64:
        return np.maximum(lst.minTick, np.round(mid * 0.0002 / lst.minTick) * lst.minTick)

    def uniform(self, name: str, salt: str, k: npt.NDArray[np.int64]) -> F64:
        return (_unit(_key(self.seed, name, salt), k) + 1.0) / 2.0


def round_tick(x: F64, tick: float) -> F64:
    return np.round(np.round(x / tick) * tick, 8)


# --- options -------------------------------------------------------------------------


def _ncdf(x: F64) -> F64:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _npdf(x: F64) -> F64:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


RATE = 0.04


def implied_vol(lst: Listing, und_price: float, t: float) -> float:
    """A plausible smile: higher vol away from the money and close to expiry."""
    if lst.expiry is None:
        return 0.3
    k = lst.strike / max(und_price, 0.01)
    return 0.22 + 0.25 * (math.log(k)) ** 2 + 0.02


def black_scholes(
    right: str, s: F64, k: float, tau: F64, vol: float
) -> dict[str, F64]:
    tau = np.maximum(tau, 1e-6)
    sq = vol * np.sqrt(tau)
    d1 = (np.log(s / k) + (RATE + 0.5 * vol * vol) * tau) / sq
    d2 = d1 - sq
    disc = np.exp(-RATE * tau)
    if right == "C":
        price = s * _ncdf(d1) - k * disc * _ncdf(d2)
        delta = _ncdf(d1)
        theta = (-s * _npdf(d1) * vol / (2 * np.sqrt(tau)) - RATE * k * disc * _ncdf(d2)) / 365
    else:
        price = k * disc * _ncdf(-d2) - s * _ncdf(-d1)
        delta = _ncdf(d1) - 1
        theta = (-s * _npdf(d1) * vol / (2 * np.sqrt(tau)) + RATE * k * disc * _ncdf(-d2)) / 365
    gamma = _npdf(d1) / (s * sq)
    vega = s * _npdf(d1) * np.sqrt(tau) / 100
    return {"price": price, "delta": delta, "gamma": gamma, "vega": vega, "theta": theta}


def expiry_epoch(lst: Listing) -> float:
    import datetime as dt

    exp = lst.expiry
    assert exp is not None
    return dt.datetime(exp.year, exp.month, exp.day, 21, 0, tzinfo=dt.UTC).timestamp()
