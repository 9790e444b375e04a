"""The /status page: served with a strict Content-Security-Policy, and rendered in a
real headless Chromium (Debian's ``chromium``) against a connector, the simulator and
a gateway on TCP: it shows the connection ok, the drop and the recovery, and no
account id without a key."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ibhost.gateway.app import init_app
from ibhost.gateway.main import Gateway
from ibhost.sim import Simulator

from .connector_fixtures import make_config, running_connector

KEY = "status-key-0123456789abcdef"
ACCOUNT = "DU1234567"  # the simulator's account
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_page_is_self_contained_and_locked_down(sim: Simulator, tmp_path: Path,
                                                      aiohttp_client: Any) -> None:
    """No key needed for the page itself (it holds no data); its CSP allows exactly
    the inline script and style it ships and same-origin requests; nothing external."""
    client = await aiohttp_client(init_app(make_config(tmp_path, sim, gateway__api_key=KEY)))
    r = await client.get("/status")
    html = await r.text()
    assert r.status == 200 and r.content_type == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(scripts) == 1 and len(styles) == 1
    assert f"script-src {_sha256(scripts[0])};" in csp
    assert f"style-src {_sha256(styles[0])};" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert not re.search(r"https?://|\bsrc=|<link|\bstyle=", html)
    assert KEY not in html and r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.head("/status")).status == 200


# --- a small Chrome DevTools Protocol client over aiohttp's websocket ------------------

class Browser:
    """Headless Chromium driven over CDP: one page target, JavaScript evaluated in it,
    console errors (a CSP violation is one) collected."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.erred = asyncio.Event()
        self.session = ""
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            m = json.loads(msg.data)
            if "id" in m and m["id"] in self.waiting:
                self.waiting.pop(m["id"]).set_result(m)
            elif m.get("method") == "Log.entryAdded":
                entry = m["params"]["entry"]
                if entry["level"] == "error" and entry.get("source") != "network":
                    # a failed request (the gap-filler's 503 here) is the network's;
                    # a CSP violation comes as "security", a script error as another
                    self.errors.append(f"{entry.get('source')}: {entry['text']}")
                    self.erred.set()
            elif m.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(m["params"]["exceptionDetails"])[:500])
                self.erred.set()

    async def send(self, method: str, session: bool = True, **params: Any) -> Any:
        self.ids += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.ids] = fut
        msg: dict[str, Any] = {"id": self.ids, "method": method, "params": params}
        if session and self.session:
            msg["sessionId"] = self.session
        await self.ws.send_str(json.dumps(msg))
        answer = await asyncio.wait_for(fut, 10)
        assert "error" not in answer, answer
        return answer["result"]

    async def open(self, url: str) -> None:
        target = await self.send("Target.createTarget", session=False, url="about:blank")
        attached = await self.send("Target.attachToTarget", session=False,
                                   targetId=target["targetId"], flatten=True)
        self.session = attached["sessionId"]
        await self.send("Log.enable")
        await self.send("Runtime.enable")
        await self.send("Page.navigate", url=url)

    async def eval(self, expression: str) -> Any:
        r = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return r["result"].get("value")

    async def until(self, expression: str, what: str, timeout: float = 10.0) -> Any:
        """Wait until the expression is truthy in the page (polled every 0.1 s)."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                dom = await self.eval("document.body && document.body.innerText")
                raise AssertionError(f"the page never showed {what}; it shows:\n{dom}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="ibhost-chromium-")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
        "--disable-extensions", "--disable-background-networking",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    try:
        assert proc.stderr is not None
        ws_url = ""
        async with asyncio.timeout(20):
            while not ws_url:
                line = (await proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError("chromium exited before it listened")
                if m := re.search(r"DevTools listening on (ws://\S+)", line):
                    ws_url = m.group(1)
        async with aiohttp.ClientSession() as http, http.ws_connect(
                ws_url, max_msg_size=0) as ws:
            browser = Browser(ws)
            try:
                yield browser
            finally:
                with contextlib.suppress(Exception):
                    await browser.send("Browser.close", session=False)
                browser.reader.cancel()
    finally:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.terminate()
                await proc.wait()
        with contextlib.suppress(ProcessLookupError):  # its own group: the renderers
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)


STATE = "document.getElementById('state').dataset.state"


async def test_page_in_chromium_follows_a_drop(sim: Simulator, tmp_path: Path) -> None:
    async with running_connector(tmp_path, sim):
        cfg = make_config(tmp_path, sim, gateway__port=0, gateway__api_key=KEY)
        async with Gateway(cfg) as gw, chromium() as b, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{gw.port}/status"
            # a consumer holds a quote stream and the account's P&L stream (whose key
            # names the account) while the page looks
            held = await http.get(f"http://127.0.0.1:{gw.port}/v1/stream?quotes=AAPL"
                                  "&pnl=account", headers={"X-API-Key": KEY})
            assert held.status == 200
            await b.open(url)
            wait = b.until
            await wait(f"{STATE} === 'ok'", "the connection ok")
            await wait("document.getElementById('programs').innerText.includes('connector')",
                       "the programs")
            await wait("document.getElementById('lines').innerText.includes('of 90')",
                       "the market-data line budget")
            await wait("document.getElementById('pacing').innerText.includes('queue')",
                       "the pacing")
            await wait("document.getElementById('streams').innerText.includes('AAPL')",
                       "the quote stream")
            await wait("document.getElementById('streams').innerText.includes('1 account')",
                       "that an account stream is not shown")
            # without a key: what any caller may see, and no account id
            html = await b.eval("document.documentElement.outerHTML")
            assert ACCOUNT not in html and "no key" in html

            # IB drops the connection and refuses it for 3 s: the page shows it, then
            # the recovery (the connector reconnects within ~2 s of the port reopening)
            await sim.close_port(3.0)
            down = await wait(f"{STATE} !== 'ok' && {STATE}", "the drop", 8.0)
            assert down in ("down", "busy", "degraded", "disconnected"), down
            await wait(f"{STATE} === 'ok'", "the recovery", 15.0)
            assert ACCOUNT not in await b.eval("document.documentElement.outerHTML")
            errors = await b.eval("document.getElementById('errors').innerText")
            assert f"ok -> {down}" in errors and f"{down} -> ok" in errors

            # with a key (a #key= fragment, wiped from the address at once)
            await b.send("Page.navigate", url=f"{url}#key={KEY}")
            await wait(f"document.getElementById('ib').innerText.includes('{ACCOUNT}')",
                       "the account with a key")
            assert KEY not in await b.eval("location.href")
            await wait("document.getElementById('pacing').innerText.includes('of 60')",
                       "the pacing window with a key")
            await wait("document.getElementById('streams').innerText.includes('pnl')",
                       "the P&L stream with a key")
            held.close()
            assert b.errors == []  # no CSP violation, no script error
            # (and a violation would be seen: an image is not allowed)
            await b.eval("document.body.append(Object.assign("
                         "document.createElement('img'), {src: '/ping'}))")
            await asyncio.wait_for(b.erred.wait(), 5)
            assert "img-src 'none'" in b.errors[0]
