"""``GET /status``: one self-contained page for people who would rather look than read.

The page is static (no data in it): its inline script polls the gateway's own JSON
pages every second with the caller's API key, if one was given (a ``#key=`` fragment
or the page's field, kept in sessionStorage), and renders them with ``textContent``
only. A Content-Security-Policy allows exactly this script and style (by hash) and
requests to the same origin; nothing is loaded from elsewhere. Without a key the
page asks only what any caller may read and never shows account ids or account
streams, even from a gateway with no key configured (docs/gateway.md, "Status page").
"""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1rem 2rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 .5rem}h2{font-size:1rem;margin:1.2rem 0 .3rem}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem}
table{border-collapse:collapse}td,th{padding:.1rem .8rem .1rem 0;text-align:left;
vertical-align:top}th{color:#666;font-weight:normal}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:4px;font-weight:bold;
background:#999;color:#fff}
.badge[data-state=ok]{background:#2a7a2a}.badge[data-state=degraded]{background:#b58900}
.badge[data-state=maintenance]{background:#268bd2}
.badge[data-state=down],.badge[data-state=busy],.badge[data-state=unreachable]{
background:#c0392b}
.muted{color:#777}.err{color:#c0392b}#keyform{margin:.5rem 0}
"""

SCRIPT = r"""
"use strict";
const POLL_MS = 1000, KEEP = 12, STORE = "ibhostStatusKey";
const $ = (id) => document.getElementById(id);
let key = null, codes = [], errors = [], lastCodeAt = null, lastState = null;

function takeKey() {  // a #key= fragment never reaches the server, and is wiped at once
  const m = /(?:^#|&)key=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(STORE, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  key = sessionStorage.getItem(STORE) || null;
  $("keystate").textContent = key ? "key given: showing what the key may see"
    : "no key: showing only what any caller may see";
}

async function get(path) {
  const headers = key ? {"X-API-Key": key} : {};
  const r = await fetch(path, {headers, cache: "no-store", credentials: "omit"});
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  return {status: r.status, body};
}

async function getText(path) {
  const headers = key ? {"X-API-Key": key} : {};
  const r = await fetch(path, {headers, cache: "no-store", credentials: "omit"});
  return r.ok ? await r.text() : null;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function rows(id, pairs) {  // [[label, value], ...] as a two-column table
  const t = el("table");
  for (const [k, v] of pairs) {
    if (v === undefined) continue;
    const tr = el("tr"); tr.append(el("th", k), el("td", v === null ? "-" : v));
    t.append(tr);
  }
  $(id).replaceChildren(t);
}

function grid(id, head, lines, empty) {  // a table with a header row
  if (!lines.length) { $(id).replaceChildren(el("p", empty, "muted")); return; }
  const t = el("table"), h = el("tr");
  for (const c of head) h.append(el("th", c));
  t.append(h);
  for (const line of lines) {
    const tr = el("tr");
    for (const c of line) tr.append(el("td", c === null || c === undefined ? "-" : c));
    t.append(tr);
  }
  $(id).replaceChildren(t);
}

function when(t) {
  if (t === null || t === undefined) return null;
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace(".000", "").replace("T", " ");
}

function note(list, at, text) {
  if (list.some((x) => x[1] === text && x[0] === at)) return;
  list.unshift([at, text]);
  list.length = Math.min(list.length, KEEP);
}

function showState(state, text) {
  const b = $("state");
  b.dataset.state = state;
  b.textContent = state;
  $("reason").textContent = text || "";
  if (lastState !== null && state !== lastState)
    note(errors, when(Date.now() / 1000), "status " + lastState + " -> " + state);
  lastState = state;
}

function connection(h, d) {
  const c = (d && d.connector && d.connector.connection) || {};
  if (h.lastIbErrorCode !== null && h.lastIbErrorAt !== lastCodeAt) {
    lastCodeAt = h.lastIbErrorAt;
    note(codes, when(h.lastIbErrorAt), String(h.lastIbErrorCode) +
      (key && h.lastIbErrorMessage ? " " + h.lastIbErrorMessage : ""));
  }
  const farms = Object.entries(h.farms || {}).map(([f, s]) => f + ": " + s).join(", ");
  const pairs = [["state", h.state], ["trading mode", h.tradingMode], ["farms", farms],
    ["competing session", h.competingSession ? "yes (IB 10197)" : "no"],
    ["last IB code", h.lastIbErrorCode], ["at", when(h.lastIbErrorAt)],
    ["last heartbeat", when(h.lastHeartbeatAt)],
    ["reconnect attempts", h.reconnectAttempts],
    ["heartbeat failures", h.heartbeatFailures],
    ["last disconnect", when(h.lastDisconnectAt)]];
  if (key) {
    pairs.push(["client id", h.clientId], ["IB error text", h.lastIbErrorMessage]);
    if (d) {
      pairs.push(["accounts", (c.accounts || []).join(", ")],
        ["codes counted", Object.entries(c.ibCodes || {}).map(([k, n]) => k + " x" + n)
          .join(", ")]);
      if (c.lastReconnectError) note(errors, when(c.lastReconnectAttemptAt),
        "reconnect: " + c.lastReconnectError);
    }
  }
  rows("ib", pairs);
  grid("codes", ["at", "code"], codes, "no IB code yet");
}

function programs(s) {
  const p = (s && s.programs) || {};
  grid("programs", ["program", "status", "detail"],
    Object.entries(p).map(([n, v]) => [n, v.status, v.reason || v.version || ""]),
    "no answer");
}

function metric(text, name) {
  const m = new RegExp("^" + name + " ([0-9.eE+-]+)$", "m").exec(text || "");
  return m ? Number(m[1]) : null;
}

function pacing(d, text) {
  const p = d && d.connector && d.connector.pacing;
  if (p) {
    const cfg = (d.connector.config || {}).pacing || {};
    rows("pacing", [["queue", p.queueDepth],
      ["small-bar window", p.windowUsed + " of " + (cfg.window_max ?? "?")],
      ["open historical", p.open + " of " + p.openLimit], ["granted", p.granted],
      ["throttled", p.throttled], ["longest wait (s)", p.waitSecondsMax],
      ["held back by rule", Object.entries(p.delayedByRule || {})
        .filter(([, n]) => n).map(([r, n]) => r + " " + n).join(", ") || "none"]]);
  } else {
    rows("pacing", [["queue", metric(text, "ibhost_connector_pacing_queue_depth")],
      ["small-bar window", metric(text, "ibhost_connector_pacing_window_used")]]);
  }
}

function streams(s) {
  if (!s) { $("lines").textContent = "no answer"; grid("streams", [], [], ""); return; }
  const l = s.lines || {};
  rows("lines", [["market-data lines", l.used + " of " + l.budget],
    ["tick-by-tick", l.tickByTick + " of " + l.tickByTickMax],
    ["consumers", s.consumers], ["stream channel", s.channelOpen ? "open" : "closed"]]);
  const all = s.streams || [];
  const shown = key ? all : all.filter((x) => x.kind !== "pnl");  // P&L names an account
  grid("streams", ["kind", "contract", "holders", "updates", "since update (s)", "stale"],
    shown.map((x) => [x.kind, x.localSymbol || x.symbol, x.holders, x.updates,
      x.secondsSinceUpdate, x.stale || ""]),
    "none");
  const hidden = all.length - shown.length + (s.hidden || 0);  // the gateway's count too
  if (hidden) $("streams").append(el("p", hidden + " account P&L stream(s) not shown " +
    "without a key", "muted"));
}

function gapfill(r) {
  if (r.status !== 200 || !r.body) {
    rows("gapfill", [["status", (r.body && r.body.error && r.body.error.message)
      || "HTTP " + r.status]]);
    grid("files", [], [], "");
    return;
  }
  const g = r.body;
  rows("gapfill", [["running", g.running ? "yes" : "no"], ["files", g.files],
    ["last scan", when((g.lastScan || {}).at)], ["next scan", when(g.nextScanAt)],
    ["waiting for", g.waitingFor], ["failures", g.failures],
    ["gaps filled today", g.gapsFilledToday]]);
  grid("files", ["file", "last bar", "gaps found", "filled", "bars written", "missing",
    "last error"], Object.values(g.perFile || {}).map((f) => [f.file, f.lastBar,
    f.gapsFound, f.gapsFilled, f.barsWritten, f.missingBars, f.lastError]), "no file yet");
  for (const e of g.recentErrors || []) note(errors, when(e.at), e.file + ": " + e.error);
}

async function tick() {
  try {
    const [h, sys, st, gf, d] = await Promise.all([get("/health"),
      get("/v1/system/system-status"), get("/v1/streams"), get("/v1/gapfill/status"),
      key ? get("/v1/health/detailed") : Promise.resolve(null)]);
    const detail = d && d.status === 200 && d.body && d.body.connector ? d.body : null;
    const text = detail ? null : await getText("/metrics");
    showState(h.body.status === "disconnected" ? h.body.ibhostStatus : h.body.status,
      h.body.reason);
    connection(h.body, detail);
    programs(sys.status === 200 ? sys.body : null);
    pacing(detail, text);
    streams(st.status === 200 ? st.body : null);
    gapfill(gf);
    for (const r of [sys, st, d]) if (r && (r.status === 401 || r.status === 403))
      note(errors, when(Date.now() / 1000), "the gateway wants a valid key (HTTP " +
        r.status + ")");
  } catch (e) {
    showState("unreachable", "the gateway does not answer: " + e);
  }
  grid("errors", ["at", "what"], errors, "none seen");
  $("updated").textContent = "updated " + when(Date.now() / 1000);
  setTimeout(tick, POLL_MS);
}

$("keyform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const v = $("key").value.trim();
  if (v) sessionStorage.setItem(STORE, v); else sessionStorage.removeItem(STORE);
  $("key").value = "";
  takeKey();
});
$("forget").addEventListener("click", () => { sessionStorage.removeItem(STORE); takeKey(); });
window.addEventListener("hashchange", takeKey);  // a #key= typed into the open page
takeKey();
tick();
"""

BODY_HTML = """<main>
<h1>ibhost <span id="state" class="badge" data-state="loading">loading</span>
<span id="reason"></span></h1>
<p class="muted"><span id="updated"></span> · <span id="keystate"></span></p>
<form id="keyform"><input id="key" type="password" autocomplete="off"
placeholder="X-API-Key"> <button type="submit">use key</button>
<button type="button" id="forget">forget key</button></form>
<h2>Programs</h2><section id="programs"></section>
<h2>IB connection</h2><section id="ib"></section>
<h2>Last IB codes</h2><section id="codes"></section>
<h2>Pacing</h2><section id="pacing"></section>
<h2>Market-data lines and streams</h2><section><div id="lines"></div>
<div id="streams"></div></section>
<h2>Gap-filler</h2><section><div id="gapfill"></div><div id="files"></div></section>
<h2>Last errors</h2><section id="errors"></section>
</main>"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


PAGE = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>ibhost status</title><style>{STYLE}</style></head>\n<body>{BODY_HTML}"
        f"<script>{SCRIPT}</script></body></html>\n").encode()

# Only the script and style above (by hash), requests to this origin, nothing else:
# no frames, no forms posted away, no base rewrite.
CSP = (f"default-src 'none'; script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)}; "
       "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "X-Frame-Options": "DENY"}


async def status_page(request: web.Request) -> web.Response:
    """The page itself holds no data, so it needs no key; its requests carry one."""
    return web.Response(body=PAGE, content_type="text/html", charset="utf-8",
                        headers=HEADERS)
