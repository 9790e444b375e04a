"""``ibhost gateway``: aiohttp on uvloop, 127.0.0.1:5001 by default."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from typing import Any

from aiohttp import web

from .. import config as config_mod
from ..cliargs import add_config_args, config_from_args
from ..config import Config
from ..proc import (
    config_error,
    freeze_startup_objects,
    setup_logging,
    stop_signals,
    wait_for_stop_signal,
)
from .app import init_app
from .auth import is_loopback, load_keys
from .connections import ConnectionGuard, GuardedSite, Limits, raise_open_files_limit
from .keys import METRICS_KEY

log = logging.getLogger("ibhost.gateway")


BIND_RETRY = 2.0  # seconds between tries of a bind address that is not there yet


def check_bind(cfg: Config) -> None:
    """Refuse a non-loopback address unless an API key is configured."""
    for field, host in (("gateway.host", cfg.gateway.host),
                        *(("gateway.bind", b) for b in cfg.gateway.bind)):
        if not is_loopback(host) and not load_keys(cfg):
            raise ValueError(f"{field} {host} is not a loopback address: set an API key "
                             "(IBHOST_GATEWAY_API_KEY or gateway.key_file) first")


class Gateway:
    def __init__(self, cfg: Config) -> None:
        check_bind(cfg)
        self.cfg = cfg
        self.app = init_app(cfg)
        self.runner: web.AppRunner | None = None
        self.port = cfg.gateway.port

    async def start(self) -> Gateway:
        # handler_cancellation: a client that hangs up cancels its request all the way
        # to IB (the connector cancels what it still has open there)
        g = self.cfg.gateway
        # keepalive_timeout: aiohttp closes a connection idle this long, also one that
        # never sends a request; lingering_time: how long it drains a body the handler
        # did not read; the guard adds the header deadline and the cap
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                    handler_cancellation=True,
                                    keepalive_timeout=g.keepalive_timeout,
                                    lingering_time=g.body_timeout)
        await self.runner.setup()
        guard = ConnectionGuard(Limits(g.header_timeout, g.max_connections_per_client),
                                self.app[METRICS_KEY].connections_dropped)
        site = GuardedSite(self.runner, g.host, g.port, guard)
        await site.start()
        self.port = site.port
        log.info("gateway listening on http://%s:%s (headers within %gs, idle "
                 "connections closed after %gs, at most %d connections per client)",
                 g.host, self.port, g.header_timeout, g.keepalive_timeout,
                 g.max_connections_per_client)
        # more addresses (a Docker bridge): each on its own, retried until it exists,
        # never holding up the first
        self.bound: dict[str, bool] = {b: False for b in g.bind if b != g.host}
        self._binding = [asyncio.get_running_loop().create_task(self._bind(b, guard))
                         for b in self.bound]
        return self

    async def _bind(self, host: str, guard: ConnectionGuard) -> None:
        assert self.runner is not None
        warned = False
        while True:
            site = GuardedSite(self.runner, host, self.port, guard)
            try:
                await site.start()
            except OSError as e:
                if not warned:
                    log.warning("cannot listen on %s:%s yet (%s); trying every %gs",
                                host, self.port, e.strerror, BIND_RETRY)
                    warned = True
                await asyncio.sleep(BIND_RETRY)
                continue
            self.bound[host] = True
            log.info("gateway listening on http://%s:%s as well (requests there need a "
                     "key)", host, self.port)
            return

    async def stop(self) -> None:
        for t in getattr(self, "_binding", ()):
            t.cancel()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def abort(self) -> None:
        """After a failed start: stop the health poll and close the clients (a full
        runner cleanup would wait out aiohttp's graceful-shutdown timeout)."""
        from .keys import CONNECTOR_KEY, GAPFILL_KEY, HEALTH_KEY, WATCHDOG_KEY

        await self.app[HEALTH_KEY].stop()
        for key in (CONNECTOR_KEY, WATCHDOG_KEY, GAPFILL_KEY):
            await self.app[key].close()
        await self.app[HEALTH_KEY].client.close()

    async def __aenter__(self) -> Gateway:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gateway", help="serve the HTTP API (127.0.0.1:5001)")
    add_config_args(p)
    p.add_argument("--bind", default=None, help="address to listen on (gateway.host)")
    p.add_argument("--http-port", type=int, default=None, help="HTTP port (gateway.port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.bind:
            args.set.append(f"gateway.host={args.bind}")
        if args.http_port is not None:
            args.set.append(f"gateway.port={args.http_port}")
        cfg = config_from_args(args)
        load_keys(cfg)  # a key that is too short is a configuration error (exit 2)
        check_bind(cfg)
    except (config_mod.ConfigError, ValueError) as e:
        return config_error("gateway", e)
    setup_logging(cfg.gateway.log_level)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(_main(cfg))


async def _main(cfg: Config) -> int:
    stop = stop_signals()  # before announcing readiness
    before, after = raise_open_files_limit()
    log.info("open files limit: %d (soft limit was %d)", after, before)
    gw = Gateway(cfg)
    try:
        await gw.start()
    except OSError as e:
        print(f"ibhost gateway: cannot listen on {cfg.gateway.host}:{cfg.gateway.port}: "
              f"{e.strerror}", file=sys.stderr)
        await gw.abort()  # close what setup opened, then exit 1 at once
        return 1
    print(f"ibhost gateway listening on http://{cfg.gateway.host}:{gw.port}", flush=True)
    freeze_startup_objects()
    await wait_for_stop_signal(stop)
    await gw.stop()
    return 0
