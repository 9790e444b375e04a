"""msgspec against pydantic v2 for typed models of ibhost's messages, on this machine.

Neither is a dependency of ibhost; run this where both are installed:

    python bench/bench_models.py            # prints a markdown table

Measures (1) what importing each costs a process (RSS and time, against a bare
interpreter and against orjson, which ibhost uses today) and (2) decoding and
encoding the connector's columnar historical answer (``POST /historical`` with
``columns``) as a typed model, for 390 bars (a day of 1-minute bars) and 98,280
(a year of regular-hours 1-minute bars), against orjson on plain dicts.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "wap", "count")
SIZES = {"390 bars (1 day of 1 min)": 390, "98,280 bars (1 year of 1 min, RTH)": 98_280}

RSS = ("import resource, sys\n{imports}\n"
       "t = open('/proc/self/status').read()\n"
       "rss = int(next(l for l in t.splitlines() if l.startswith('VmRSS')).split()[1])\n"
       "print(rss)")

MSGSPEC_MODELS = """
import msgspec
class Data(msgspec.Struct):
    timestamp: list[str]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    wap: list[float | None]
    count: list[int]
class Historical(msgspec.Struct):
    success: bool
    conId: int
    symbol: str
    barSize: str
    whatToShow: str
    useRTH: bool
    requests: int
    count: int
    columns: list[str]
    data: Data
"""

PYDANTIC_MODELS = """
import pydantic
class Data(pydantic.BaseModel):
    timestamp: list[str]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    wap: list[float | None]
    count: list[int]
class Historical(pydantic.BaseModel):
    success: bool
    conId: int
    symbol: str
    barSize: str
    whatToShow: str
    useRTH: bool
    requests: int
    count: int
    columns: list[str]
    data: Data
"""


def answer(n: int) -> dict[str, Any]:
    """A columnar answer as the connector writes it (timestamps ISO, UTC)."""
    t0 = int(dt.datetime(2024, 11, 1, 14, 30, tzinfo=dt.UTC).timestamp())
    ts = [t0 + 60 * (i % 390) + 86400 * (i // 390) for i in range(n)]
    price = [100.0 + (i % 997) * 0.01 for i in range(n)]
    return {"success": True, "conId": 265598, "symbol": "AAPL", "barSize": "1 min",
            "whatToShow": "TRADES", "useRTH": True, "requests": max(1, n // 390),
            "count": n, "columns": list(COLUMNS),
            "data": {"timestamp": [dt.datetime.fromtimestamp(t, dt.UTC).isoformat()
                                   for t in ts],
                     "open": price, "high": [p + 0.05 for p in price],
                     "low": [p - 0.05 for p in price], "close": price,
                     "volume": [float(1000 + i % 500) for i in range(n)],
                     "wap": [p + 0.01 for p in price], "count": [10 + i % 90 for i in range(n)]}}


def best(fn: Callable[[], Any], seconds: float = 1.0) -> float:
    """The fastest of repeated runs, in milliseconds (the machine is shared)."""
    fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def held(fn: Callable[[], Any]) -> float:
    """MiB the decoded answer holds (Python heap, tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    obj = fn()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del obj
    return size / 2**20


def imports() -> list[tuple[str, float, float]]:
    rows = []
    cases = {"bare interpreter": "", "orjson (today)": "import orjson",
             "msgspec + models": MSGSPEC_MODELS, "pydantic v2 + models": PYDANTIC_MODELS}
    for name, code in cases.items():
        rss, ms = [], []
        for _ in range(5):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", RSS.format(imports=code)],
                                 capture_output=True, text=True, check=True).stdout
            ms.append((time.perf_counter() - t) * 1000)
            rss.append(int(out) / 1024)
        rows.append((name, min(rss), min(ms)))
    return rows


def codecs() -> list[tuple[str, str, float, float, float]]:
    import msgspec
    import orjson

    def define(code: str) -> Any:
        # compiled without this module's ``from __future__ import annotations``, as
        # a module defining the models would be
        ns: dict[str, Any] = {}
        exec(compile(code, "<models>", "exec", dont_inherit=True), ns)
        return ns["Historical"]

    m_type, p_type = define(MSGSPEC_MODELS), define(PYDANTIC_MODELS)
    rows = []
    for label, n in SIZES.items():
        raw = orjson.dumps(answer(n))
        print(f"{label}: {len(raw) / 2**20:.2f} MiB of JSON", file=sys.stderr)
        m_obj = msgspec.json.decode(raw, type=m_type)
        p_obj = p_type.model_validate_json(raw)
        d_obj = orjson.loads(raw)
        assert msgspec.json.encode(m_obj) == raw
        assert json.loads(p_obj.model_dump_json()) == d_obj
        decoder = msgspec.json.Decoder(m_type)
        encoder = msgspec.json.Encoder()
        rows += [
            (label, "orjson, plain dicts (today)",
             best(lambda raw=raw: orjson.loads(raw)),
             best(lambda d=d_obj: orjson.dumps(d)),
             held(lambda raw=raw: orjson.loads(raw))),
            (label, "msgspec Struct",
             best(lambda raw=raw, d=decoder: d.decode(raw)),
             best(lambda o=m_obj, e=encoder: e.encode(o)),
             held(lambda raw=raw, d=decoder: d.decode(raw))),
            (label, "pydantic v2 BaseModel",
             best(lambda raw=raw: p_type.model_validate_json(raw)),
             best(lambda o=p_obj: o.model_dump_json()),
             held(lambda raw=raw: p_type.model_validate_json(raw))),
        ]
    return rows


def main() -> None:
    import msgspec
    import pydantic

    print(f"Python {sys.version.split()[0]}, msgspec {msgspec.__version__}, "
          f"pydantic {pydantic.VERSION}\n")
    print("| import | RSS MiB | time to exit ms |\n|---|---:|---:|")
    for name, rss, ms in imports():
        print(f"| {name} | {rss:.1f} | {ms:.0f} |")
    print("\n| answer | codec | decode ms | encode ms | decoded MiB |\n"
          "|---|---|---:|---:|---:|")
    for label, codec, dec, enc, mib in codecs():
        print(f"| {label} | {codec} | {dec:.3f} | {enc:.3f} | {mib:.2f} |")


if __name__ == "__main__":
    main()
