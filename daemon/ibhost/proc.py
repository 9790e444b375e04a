"""Process helpers shared by the ibhost programs."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)


def config_error(program: str, error: Exception) -> int:
    """Report a configuration error the same way in every program: exit status 2."""
    print(f"ibhost {program}: configuration error: {error}", file=sys.stderr)
    return 2


def stop_signals() -> asyncio.Event:
    """Catch SIGTERM/SIGINT from now on; the event is set when one arrives.

    Install this before announcing readiness, so that a signal sent right after
    the announcement still shuts the program down cleanly.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def wait_for_stop_signal(stop: asyncio.Event | None = None) -> None:
    """Return when SIGTERM or SIGINT arrives (the programs then shut down cleanly)."""
    await (stop or stop_signals()).wait()
