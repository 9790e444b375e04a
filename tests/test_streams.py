"""Live streams over the one IB connection: shared subscriptions, the line budget,
recovery after IB's faults, bars across a reconnect, order events that are never
lost. A real connector on the simulator over TCP, the real gateway, real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ibhost.connector.main import Connector
from ibhost.gateway.streams.broker import BROKER_KEY
from ibhost.sim import Simulator

from .connector_fixtures import running_connector, wait_until
from .test_gateway import KEY, gateway

H = {"X-API-Key": KEY}


class Sse:
    """Reads one Server-Sent Events answer: (event, id, data) as they come."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp
        self.events: list[tuple[str, int | None, dict[str, Any]]] = []
        self._task = asyncio.get_running_loop().create_task(self._read())
        self.done = False

    async def _read(self) -> None:
        event, eid, data = "message", None, b""
        try:
            while True:
                line = await self.resp.content.readline()
                if not line:
                    break
                line = line.rstrip(b"\n")
                if not line:
                    if data:
                        self.events.append((event, eid, orjson.loads(data)))
                    event, eid, data = "message", None, b""
                elif line.startswith(b"event: "):
                    event = line[7:].decode()
                elif line.startswith(b"id: "):
                    eid = int(line[4:])
                elif line.startswith(b"data: "):
                    data = line[6:]
        finally:
            self.done = True

    def of(self, event: str) -> list[dict[str, Any]]:
        return [d for e, _, d in self.events if e == event]

    async def wait(self, pred: Any, timeout: float = 10.0) -> None:
        await wait_until(lambda: pred(self), timeout)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self.resp.close()


@contextlib.asynccontextmanager
async def stack(aiohttp_client: Any, home: Path, sim: Simulator, **overrides: Any
                ) -> AsyncIterator[tuple[Connector, Any]]:
    settings = {"streams__linger": 0.3, **overrides}
    async with running_connector(home, sim, **settings) as (con, _client), \
            gateway(aiohttp_client, home, sim, trading__enabled=True,
                    trading__allowed_sec_types="STK", **settings) as gw:
        yield con, gw


async def sse(gw: Any, query: str, headers: dict[str, str] | None = None) -> Sse:
    resp = await gw.get(f"/v1/stream?{query}", headers=headers or {})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return Sse(resp)


def md_requests(sim: Simulator) -> tuple[int, int]:
    req = sim.state()["stats"]["requests"]
    return req.get("reqMktData", 0), req.get("cancelMktData", 0)


async def test_two_consumers_share_one_subscription_and_the_last_leaving_cancels_it(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim) as (con, gw):
        await wait_until(lambda: gw.app[BROKER_KEY].ready.is_set(), 10)
        before = md_requests(sim)
        a = await sse(gw, "quotes=AAPL")
        ws = await gw.ws_connect("/v1/stream/ws")
        await ws.send_str('{"op": "subscribe", "quotes": ["AAPL"]}')
        got_ws: list[dict[str, Any]] = []

        async def read_ws() -> None:
            async for msg in ws:
                data = orjson.loads(msg.data)
                got_ws.extend(data if isinstance(data, list) else [data])

        reader = asyncio.get_running_loop().create_task(read_ws())
        await a.wait(lambda s: len(s.of("quote")) >= 3)
        await wait_until(lambda: sum(e["type"] == "quote" for e in got_ws) >= 3, 10)
        assert next(e for e in got_ws if e["type"] == "subscribed")["streams"][0][
            "symbol"] == "AAPL"
        # one subscription at IB for both consumers
        assert md_requests(sim)[0] - before[0] == 1
        assert [c["subscriptions"] for c in sim.state()["clients"]] == [1]
        # one consumer leaving never stops the other's stream
        await a.close()
        n = sum(e["type"] == "quote" for e in got_ws)
        await asyncio.sleep(0.8)  # past the linger
        assert md_requests(sim)[1] == before[1]
        await wait_until(lambda: sum(e["type"] == "quote" for e in got_ws) >= n + 3, 10)
        # the last one leaving cancels it at IB, after the linger
        await ws.close()
        reader.cancel()
        await wait_until(lambda: md_requests(sim)[1] - before[1] == 1, 10)
        await wait_until(lambda: [c["subscriptions"] for c in sim.state()["clients"]] == [0],
                         5)
        status = await (await gw.get("/v1/streams")).json()
        assert status["streams"] == [] and status["lines"]["used"] == 0


async def test_unsubscribe_by_one_websocket_consumer_keeps_the_other(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim) as (con, gw):
        one = await gw.ws_connect("/v1/stream/ws")
        two = await gw.ws_connect("/v1/stream/ws")
        for ws in (one, two):
            await ws.send_str('{"op": "subscribe", "quotes": ["MSFT"]}')
            reply = orjson.loads((await ws.receive()).data)
            assert reply["type"] == "subscribed", reply
        key = reply["streams"][0]["key"]
        await one.send_str(orjson.dumps({"op": "unsubscribe", "keys": [key]}).decode())
        await asyncio.sleep(0.8)
        quotes = 0
        while quotes < 3:
            data = orjson.loads((await asyncio.wait_for(two.receive(), 5)).data)
            for e in data if isinstance(data, list) else [data]:
                quotes += e["type"] == "quote"
        assert md_requests(sim)[1] == 0  # still held for the second consumer
        # bad input: a clear error naming the field, the socket stays open
        await two.send_str('{"op": "subscribe", "quotes": "MSFT"}')
        while True:
            data = orjson.loads((await asyncio.wait_for(two.receive(), 5)).data)
            if isinstance(data, dict) and data["type"] == "error":
                break
        assert data["code"] == "bad_request" and data["field"] == "quotes"
        await one.close()
        await two.close()


async def test_the_line_budget_refuses_with_429_and_ib_never_sends_101(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    # the simulator, as IB, allows 3 lines: a fourth quote stream at IB would be a 101
    sim.max_lines = 3
    async with stack(aiohttp_client, tmp_path, sim, streams__market_data_lines=5,
                     streams__snapshot_lines=2) as (con, gw):
        held = [await sse(gw, f"quotes={s}") for s in ("AAPL", "MSFT", "SPY")]
        for s in held:
            await s.wait(lambda x: len(x.of("subscribed")) == 1)
        r = await gw.get("/v1/stream?quotes=QQQ")
        assert r.status == 429
        err = (await r.json())["error"]
        assert err["code"] == "line_budget"
        assert "3 of 3 lines" in err["message"] and "streams.market_data_lines" in \
            err["message"]
        assert err["budget"] == 3 and err["used"] == 3
        text = await (await gw.get("/metrics", headers=H)).text()
        for line in ("ibhost_stream_lines_used 3.0", "ibhost_stream_line_budget 3.0",
                     "ibhost_stream_refused_total 1.0", 'ibhost_stream_consumers{'
                     'transport="sse"} 3.0', 'ibhost_stream_subscriptions{kind="quote"} 3.0'):
            assert line in text, line
        # an unknown symbol is a 404 naming it, not a 500
        r = await gw.get("/v1/stream?quotes=NOSUCHSYM")
        assert r.status == 404, await r.text()
        for s in held:
            await s.close()
        assert "101" not in sim.state()["stats"]["errors_sent"]
        # once the lines are free again, the refused one is served
        await wait_until(lambda: con.streams.lines()["used"] == 0, 5)
        ok = await sse(gw, "quotes=QQQ")
        await ok.wait(lambda x: len(x.of("quote")) >= 1)
        await ok.close()


async def test_quotes_resume_after_1101_and_a_farm_blip_with_status_events(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim) as (con, gw):
        s = await sse(gw, "quotes=AAPL")
        await s.wait(lambda x: len(x.of("quote")) >= 2)
        sim.connectivity_lost(restore="1101", after=0.5)
        await s.wait(lambda x: any(e["state"] == "resumed" for e in x.of("status")), 5)
        stale = [e for e in s.of("status") if e["state"] == "stale"]
        assert stale and stale[0]["cause"] == "connectivity_lost"
        resumed = next(e for e in s.of("status") if e["state"] == "resumed")
        assert resumed["gapSeconds"] >= 0.4
        n = len(s.of("quote"))
        await s.wait(lambda x: len(x.of("quote")) >= n + 2, 5)
        # a market-data farm blip: stale, then re-requested on 2104 and resumed
        sim.farm_broken(2103, after=0.5)
        await s.wait(lambda x: sum(e["state"] == "resumed" for e in x.of("status")) >= 2, 5)
        causes = [e["cause"] for e in s.of("status") if e["state"] == "stale"]
        assert causes.count("farm_market_data") == 1, causes
        await wait_until(lambda: con.streams.resubscriptions.get("farm") == 1, 5)
        await s.close()


async def test_quotes_resume_after_a_simulator_restart(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim) as (con, gw):
        s = await sse(gw, "quotes=AAPL")
        await s.wait(lambda x: len(x.of("quote")) >= 2)
        loop = asyncio.get_running_loop()
        await sim.restart(downtime=0.5)
        t0 = loop.time()
        await s.wait(lambda x: any(e["state"] == "resumed" for e in x.of("status")), 10)
        assert loop.time() - t0 < 5.0
        assert [e["cause"] for e in s.of("status")][:2] == ["disconnected", "disconnected"]
        n = len(s.of("quote"))
        await s.wait(lambda x: len(x.of("quote")) >= n + 2, 5)
        await s.close()


async def test_live_bars_across_a_reconnect_have_no_duplicate_and_no_gap(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    start = dt.datetime(2025, 12, 10, 15, 30, 20, tzinfo=dt.UTC)
    sim.set_time(start)
    async with stack(aiohttp_client, tmp_path, sim) as (con, gw):
        s = await sse(gw, "bars=AAPL&barSize=1%20min")
        await s.wait(lambda x: len(x.of("bar")) >= 1)
        first = s.of("bar")[0]
        assert first["time"] == "2025-12-10T15:29:00+00:00"  # the last complete one
        # the connection drops; four minutes pass before it is back
        sim.set_time(start + dt.timedelta(minutes=4))
        sim.drop()
        await s.wait(lambda x: any(e["state"] == "resumed" for e in x.of("status")), 10)
        await s.wait(lambda x: len(x.of("bar")) >= 5, 10)
        times = [dt.datetime.fromisoformat(b["time"]) for b in s.of("bar")]
        assert times == [times[0] + dt.timedelta(minutes=i) for i in range(len(times))], times
        assert times[-1] == dt.datetime(2025, 12, 10, 15, 33, tzinfo=dt.UTC)
        await s.close()


async def test_order_events_resume_from_last_event_id_on_a_new_gateway(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with running_connector(tmp_path, sim, streams__linger=0.3) as (con, _):
        async with gateway(aiohttp_client, tmp_path, sim, trading__enabled=True) as gw:
            s = await sse(gw, "orders=true", H)
            await s.wait(lambda x: len(x.of("subscribed")) == 1)
            r = await gw.post("/v1/orders", headers=H, json={
                "symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "MKT"})
            assert r.status in (200, 201), await r.text()
            await s.wait(lambda x: any(e["event"] == "commission" for e in x.of("order")))
            seen = [eid for e, eid, _ in s.events if e == "order"]
            assert seen == sorted(seen) and len(set(seen)) == len(seen)
            await s.close()
            # while nobody listens: another order
            r = await gw.post("/v1/orders", headers=H, json={
                "symbol": "MSFT", "action": "BUY", "quantity": 2, "orderType": "MKT"})
            assert r.status in (200, 201)
            await wait_until(lambda: con.streams.journal.seq >= seen[-1] + 3, 10)
        # a new gateway (the old one is gone): resume from the last id seen
        async with gateway(aiohttp_client, tmp_path, sim, trading__enabled=True) as gw2:
            s2 = await sse(gw2, "orders=true", {**H, "Last-Event-ID": str(seen[-1])})
            await s2.wait(lambda x: any(e["event"] == "commission" for e in x.of("order")))
            ids = [eid for e, eid, _ in s2.events if e == "order"]
            assert ids[0] == seen[-1] + 1 and ids == list(range(ids[0], ids[-1] + 1))
            assert {e["symbol"] for e in s2.of("order")} == {"MSFT"}
            # order events need a key
            r = await gw2.get("/v1/stream?orders=true")
            assert r.status == 401
            bad = await gw2.get("/v1/stream?orders=true", headers={**H,
                                                                   "Last-Event-ID": "x"})
            assert bad.status == 400 and (await bad.json())["error"]["field"] == \
                "Last-Event-ID"
            await s2.close()


async def test_python_client_streams_and_resumes_across_a_gateway_restart(
        sim: Simulator, tmp_path: Path) -> None:
    from ibhost.client import AsyncIBHostClient, IBHostClient, IBHostError
    from ibhost.gateway.main import Gateway

    from .connector_fixtures import make_config

    async with running_connector(tmp_path, sim, streams__linger=0.3) as (con, client):
        cfg = make_config(tmp_path, sim, gateway__port=0, gateway__api_key=KEY,
                          trading__enabled=True, streams__linger=0.3)
        gw = await Gateway(cfg).start()
        port = gw.port
        url = f"http://127.0.0.1:{port}"
        async with AsyncIBHostClient(url, api_key=KEY, backoff=0.1) as c:
            quotes = []
            async for q in c.quotes(["AAPL", "MSFT"]):
                quotes.append(q)
                if {x["symbol"] for x in quotes} == {"AAPL", "MSFT"}:
                    break
            with pytest.raises(IBHostError) as bad:
                async for _ in c.quotes("NOSUCHSYM"):
                    pass
            assert bad.value.status == 404

            events: list[dict[str, Any]] = []

            async def follow() -> None:
                async for ev in c.order_events():
                    events.append(ev)

            task = asyncio.get_running_loop().create_task(follow())
            await wait_until(lambda: gw.app[BROKER_KEY].order_consumers, 10)
            await c.place_order("AAPL", "BUY", 1, orderType="MKT",
                                idempotency_key="stream-1")
            await wait_until(lambda: any(e["event"] == "commission" for e in events), 10)
            first = max(e["seq"] for e in events)
            # the gateway goes away; an order is filled meanwhile; a new one comes up
            await gw.stop()
            placed = await client.request("POST", "/orders", json_body={
                "symbol": "MSFT", "action": "BUY", "quantity": 1, "orderType": "MKT"})
            assert placed["status"] in ("Filled", "Submitted", "PreSubmitted"), placed
            await wait_until(lambda: con.streams.journal.seq >= first + 3, 10)
            gw = await Gateway(make_config(tmp_path, sim, gateway__port=port,
                                           gateway__api_key=KEY, trading__enabled=True,
                                           streams__linger=0.3)).start()
            await wait_until(lambda: any(e["event"] == "commission" and
                                         e["symbol"] == "MSFT" for e in events), 15)
            task.cancel()
            seqs = [e["seq"] for e in events]
            assert seqs == list(range(seqs[0], seqs[-1] + 1))  # each once, none missed
        # the synchronous client, in a thread
        def two_quotes() -> list[dict[str, Any]]:
            out = []
            for q in IBHostClient(url).quotes("SPY"):
                out.append(q)
                if len(out) == 2:
                    return out
            return out

        got = await asyncio.to_thread(two_quotes)
        assert [q["symbol"] for q in got] == ["SPY", "SPY"]
        await gw.stop()


async def test_an_order_filled_while_the_connection_is_down_reaches_a_consumer_once(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim) as (con, gw):
        s = await sse(gw, "orders=true", H)
        await s.wait(lambda x: len(x.of("subscribed")) == 1)
        r = await gw.post("/v1/orders", headers=H, json={
            "symbol": "AAPL", "action": "BUY", "quantity": 5, "orderType": "LMT",
            "limitPrice": 1.0})
        assert r.status == 201, await r.text()
        order = await r.json()
        await s.wait(lambda x: any(e["event"] == "status" and e["status"] == "Submitted"
                                   for e in x.of("order")))
        filled = await sim.fill_while_down(order_id=order["orderId"], downtime=1.0)
        assert filled == 1
        await s.wait(lambda x: any(e["event"] == "commission" for e in x.of("order")), 15)
        await asyncio.sleep(1.0)  # nothing more is coming
        mine = [e for e in s.of("order") if e["permId"] == order["permId"]]
        execs = [e for e in mine if e["event"] == "execution"]
        assert len(execs) == 1 and execs[0]["reconciled"] is True
        assert execs[0]["shares"] == 5 and execs[0]["symbol"] == "AAPL"
        assert len([e for e in mine if e["event"] == "commission"]) == 1
        # and /v1/executions shows the fill, once
        fills = await (await gw.get("/v1/executions", headers=H)).json()
        assert [f["execId"] for f in fills].count(execs[0]["execId"]) == 1
        ids = [eid for e, eid, _ in s.events if e == "order"]
        assert ids == list(range(ids[0], ids[-1] + 1))
        # the connector restarting does not publish it again: the journal knows it
        seq = con.streams.journal.seq
        since = con.session.diag.connectedSince
        sim.drop()
        await wait_until(lambda: con.session.diag.connectedSince != since
                         and con.session.usable, 10)
        await asyncio.sleep(0.5)
        assert con.streams.journal.seq == seq
        await s.close()


async def test_a_consumer_that_reads_nothing_never_delays_another_and_is_closed_with_a_reason(
        sim: Simulator, tmp_path: Path) -> None:
    import socket
    import time

    from ibhost.gateway.main import Gateway

    from .connector_fixtures import make_config

    symbols = "AAPL,MSFT,SPY,QQQ,IBM,NVDA,AMZN,GOOGL,META,TSLA"
    async with running_connector(tmp_path, sim, streams__linger=0.3) as (con, client):
        cfg = make_config(tmp_path, sim, gateway__port=0, gateway__api_key=KEY,
                          trading__enabled=True, streams__consumer_queue=20)
        gw = await Gateway(cfg).start()
        try:
            # the stuck consumer: a tiny receive buffer, and it never reads
            stuck = socket.socket()
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            stuck.connect(("127.0.0.1", gw.port))
            stuck.sendall(f"GET /v1/stream?quotes={symbols}&orders=true HTTP/1.1\r\n"
                          f"Host: 127.0.0.1\r\nX-API-Key: {KEY}\r\n\r\n".encode())
            # ... and the gateway's side of it a small send buffer (the kernel would
            # otherwise grow it to megabytes on loopback before the gateway felt it)
            port = stuck.getsockname()[1]
            await wait_until(lambda: any(
                h.transport.get_extra_info("peername")[1] == port
                for h in gw.runner.server.connections if h.transport), 5)
            for h in gw.runner.server.connections:
                if h.transport and h.transport.get_extra_info("peername")[1] == port:
                    h.transport.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            # the fast consumer, on the same symbols
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(f"GET /v1/stream?quotes={symbols} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"\r\n".encode())
            arrivals: list[float] = []

            async def read_fast() -> None:
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    if line.startswith(b"event: quote"):
                        arrivals.append(time.monotonic())

            fast = asyncio.get_running_loop().create_task(read_fast())
            broker = gw.app[BROKER_KEY]
            await wait_until(lambda: len(broker.consumers) == 2 and len(arrivals) > 20, 10)
            # the stuck one's socket fills; its quotes conflate, nothing is dropped
            stuck_c = next(c for c in broker.consumers if c.orders)
            last = (-1, time.monotonic())

            def blocked() -> bool:  # nothing handed over for a second, quotes waiting
                nonlocal last
                if stuck_c.drained != last[0]:
                    last = (stuck_c.drained, time.monotonic())
                return bool(stuck_c.latest) and time.monotonic() - last[1] > 1.0

            await wait_until(blocked, 30)
            assert len(stuck_c.pending) == 0  # quotes only so far: conflated, not queued
            # order events are never dropped: past 20 unread, the consumer is closed
            n = 0
            while not stuck_c.closed:
                await client.request("POST", "/orders", json_body={
                    "symbol": "AAPL", "action": "BUY", "quantity": 1, "orderType": "LMT",
                    "limitPrice": 1.0})
                n += 1
                assert n < 40
            assert "too slow" in stuck_c.closed and "streams.consumer_queue" in \
                stuck_c.closed
            assert stuck_c not in broker.consumers
            # meanwhile the fast consumer was never held up
            t0 = time.monotonic()
            await wait_until(lambda: len([t for t in arrivals if t > t0]) > 20, 5)
            gaps = [b - a for a, b in itertools.pairwise(arrivals)]
            assert max(gaps) < 1.0, max(gaps)
            # the stuck one, reading at last, is told why
            stuck.setblocking(False)
            loop = asyncio.get_running_loop()
            data = b""
            with contextlib.suppress(ConnectionError):
                while b"event: closed" not in data:
                    chunk = await asyncio.wait_for(loop.sock_recv(stuck, 65536), 5)
                    if not chunk:
                        break
                    data += chunk
            assert b"event: closed" in data and b"too slow" in data
            text = await gw_metrics(gw.port)
            assert 'ibhost_stream_consumers_closed_total{reason="slow"} 1.0' in text
            fast.cancel()
            writer.close()
            stuck.close()
        finally:
            await gw.stop()


async def gw_metrics(port: int) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics",
                                                   headers=H) as r:
        return await r.text()


async def test_a_silent_stream_in_market_hours_is_marked_stale_and_re_requested(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim, streams__stale_after=1.0) as (con, gw):
        s = await sse(gw, "quotes=AAPL")
        await s.wait(lambda x: len(x.of("quote")) >= 2)
        before = md_requests(sim)[0]
        sim.farms["usfarm"] = False  # quotes stop, and IB says nothing
        await s.wait(lambda x: any(e["state"] == "stale" for e in x.of("status")), 5)
        assert s.of("status")[0]["cause"] == "silent"
        await wait_until(lambda: md_requests(sim)[0] > before, 5)  # asked again
        sim.farms["usfarm"] = True
        await s.wait(lambda x: any(e["state"] == "resumed" for e in x.of("status")), 5)
        assert con.streams.resubscriptions["silent"] >= 1
        text = await (await gw.get("/metrics", headers=H)).text()
        assert 'ibhost_stream_resubscriptions_total{cause="silent"}' in text
        await s.close()


async def test_a_websocket_from_an_origin_not_allowed_is_refused(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    import aiohttp

    async with stack(aiohttp_client, tmp_path, sim,
                     gateway__cors_origins="http://localhost:8081") as (con, gw):
        with contextlib.suppress(aiohttp.WSServerHandshakeError):
            await gw.ws_connect("/v1/stream/ws", headers={"Origin": "https://evil.example"})
            raise AssertionError("the handshake was accepted")
        r = await gw.get("/v1/stream/ws", headers={"Origin": "https://evil.example"})
        assert r.status == 403 and (await r.json())["error"]["field"] == "Origin"
        ok = await gw.ws_connect("/v1/stream/ws", headers={"Origin": "http://localhost:8081"})
        await ok.send_str('{"op": "subscribe", "quotes": ["AAPL"]}')
        assert orjson.loads((await ok.receive()).data)["type"] == "subscribed"
        await ok.close()


async def test_real_time_bars_and_tick_by_tick_streams_within_ibs_limits(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim) as (con, gw):
        s = await sse(gw, "realtimeBars=AAPL&ticks=MSFT&tickType=BidAsk")
        await s.wait(lambda x: len(x.of("bar")) >= 1 and len(x.of("tick")) >= 3, 20)
        b0 = s.of("bar")[0]
        assert b0["barSize"] == "5 secs" and b0["symbol"] == "AAPL"
        assert dt.datetime.fromisoformat(b0["time"]).second % 5 == 0
        assert b0["low"] <= b0["open"] <= b0["high"] and b0["count"] > 0
        tick = s.of("tick")[0]
        assert tick["symbol"] == "MSFT" and tick["bidPrice"] < tick["askPrice"]
        md = sim.state()["market_data"]
        assert md["tick_by_tick_used"] == 1 and md["lines_used"] == 2
        # IB allows 3 tick-by-tick streams with 100 lines: the fourth is refused here
        more = [await sse(gw, f"ticks={sym}") for sym in ("AAPL", "SPY")]
        r = await gw.get("/v1/stream?ticks=QQQ")
        assert r.status == 429
        err = (await r.json())["error"]
        assert err["code"] == "line_budget" and "tick-by-tick" in err["message"]
        assert "10190" not in sim.state()["stats"]["errors_sent"]
        for x in [s, *more]:
            await x.close()


async def test_pnl_and_portfolio_streams_need_a_key_and_share_ibs_subscription(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim) as (con, gw):
        r = await gw.get("/v1/stream?pnl=account")
        assert r.status == 401
        s = await sse(gw, "pnl=account,AAPL&portfolio=true", H)
        await s.wait(lambda x: {e.get("conId") for e in x.of("pnl")} >= {None, 265598}, 10)
        acct = next(e for e in s.of("pnl") if "conId" not in e)
        assert acct["account"] == sim.state()["account"] and "dailyPnL" in acct
        r = await gw.post("/v1/orders", headers=H, json={
            "symbol": "AAPL", "action": "BUY", "quantity": 3, "orderType": "MKT"})
        assert r.status == 201
        await s.wait(lambda x: any(e["symbol"] == "AAPL" and e["position"] >= 3
                                   for e in x.of("position")), 10)
        await s.wait(lambda x: len(x.of("accountValue")) > 0, 10)
        # what holds the lines: P&L streams (they name the account) only with a key
        keyless = await (await gw.get("/v1/streams")).json()
        assert sim.state()["account"] not in str(keyless) and keyless["hidden"] == 2
        keyed = await (await gw.get("/v1/streams", headers=H)).json()
        assert sim.state()["account"] in str(keyed)
        # /v1/pnl answers from the held subscription: no second reqPnL at IB
        before = sim.state()["stats"]["requests"].get("reqPnL", 0)
        p = await (await gw.get("/v1/pnl", headers=H)).json()
        assert p["account"] == acct["account"] and "dailyPnL" in p
        assert sim.state()["stats"]["requests"].get("reqPnL", 0) == before == 1
        await s.close()
        await wait_until(lambda: sim.state()["stats"]["requests"].get("cancelPnL", 0) == 1, 5)


async def test_streams_per_api_key_are_limited(
        sim: Simulator, tmp_path: Path, aiohttp_client: Any) -> None:
    async with stack(aiohttp_client, tmp_path, sim,
                     streams__max_consumers_per_key=2) as (con, gw):
        held = [await sse(gw, "quotes=AAPL", H) for _ in range(2)]
        r = await gw.get("/v1/stream?quotes=AAPL", headers=H)
        assert r.status == 429
        err = (await r.json())["error"]
        assert "streams.max_consumers_per_key" in err["message"]
        # callers without a key are counted apart (one bucket for all of them)
        other = await sse(gw, "quotes=AAPL")
        await held[0].close()
        await wait_until(lambda: len(gw.app[BROKER_KEY].consumers) == 2, 5)
        again = await sse(gw, "quotes=AAPL", H)
        for x in (held[1], other, again):
            await x.close()
