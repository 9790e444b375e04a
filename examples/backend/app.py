"""A tiny backend in a container, using IB through ibhost's gateway on the host.

It reads a week of hourly bars, follows a few live quotes and places one paper
order, with ibhost's client (``pip install 'ibhost-client[pandas]'``). Settings
come from the environment:

    IB_HOST_SERVICE_URL      the gateway (default http://localhost:5001)
    IB_HOST_SERVICE_API_KEY  its API key (needed for orders)
    SYMBOL                   AAPL
    QUOTES                   how many quotes to show (3)
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid

from ibhost_client import IBHostClient, IBHostError

SYMBOL = os.environ.get("SYMBOL", "AAPL")
QUOTES = int(os.environ.get("QUOTES", "3"))


def main() -> int:
    ib = IBHostClient(retries=5)  # the URL and the API key from the environment
    health = ib.health()
    print(f"ibhost at {ib.base_url}: {health['status']}")
    if health["status"] not in ("ok", "degraded"):
        print(f"IB is not usable now: {health.get('reason')}", file=sys.stderr)
        return 1

    # 1. bars: the last five days, hourly (a pandas DataFrame, UTC index)
    bars = ib.fetch_historical_data(SYMBOL, "1h", duration="5 D", progress=False)
    when, close = bars.index[-1], bars["close"].iloc[-1]
    print(f"bars: {len(bars)} hourly bars of {SYMBOL}, the last at {when:%Y-%m-%d %H:%M} "
          f"UTC closed at {close:.2f}")

    # 2. quotes: a live stream (Server-Sent Events); leaving the loop closes it
    for q in itertools.islice(ib.quotes([SYMBOL]), QUOTES):
        print(f"quote: {q['symbol']} bid {q['bid']} ask {q['ask']} last {q['last']}")

    # 3. a paper order; the idempotency key makes a retry safe (never placed twice)
    try:
        order = ib.place_order(SYMBOL, "BUY", 1, orderType="MKT",
                               idempotency_key=f"example-{uuid.uuid4()}")
    except IBHostError as e:  # 401/403: no key or a wrong one, trading off, a guard
        print(f"order refused: {e}", file=sys.stderr)
        return 1
    print(f"order: BUY 1 {SYMBOL} MKT -> order id {order['orderId']}, {order['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
