"""Process helpers shared by the ibhost programs."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import signal
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


ACCOUNT = re.compile(r"\b(DU|DF|U|F)(\d{2,})(\d{3})\b")


class MaskAccounts(logging.Filter):
    """Account ids in log lines become ``DU****567``: logs are shared in bug reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = ACCOUNT.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


def freeze_startup_objects() -> None:
    """Put what start-up made (modules, the application, its routes: about 45,000
    objects in the gateway or the connector) out of the collector's reach: a full
    collection walks them all, 45 ms on the 2-vCPU VM, and lands in the middle of
    whichever request is running then. Called once the program serves; what comes
    later is collected as before."""
    gc.collect()
    gc.freeze()


def setup_logging(level: str) -> None:
    """One format; account ids masked; the IB library's per-message INFO chatter
    (object dumps on every order and fill) kept out unless DEBUG is asked for."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskAccounts())
    if level != "DEBUG":
        for name in ("ib_async", "ib_insync"):
            logging.getLogger(name).setLevel(logging.WARNING)
            logging.getLogger(name).addFilter(RoutineIbErrors())


class RoutineIbErrors(logging.Filter):
    """The library logs every IB error code at ERROR, routine ones too: a cancelled
    order (202), a market closed inside a long range (162 "no data"). The connector
    handles and reports those itself."""

    ROUTINE = re.compile(r"Error (202|2104|2106|2158|10167)\b|HMDS query returned no data")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.ROUTINE.search(record.getMessage())


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


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a long-running loop task and return once it has really ended.

    Python 3.11's ``wait_for`` can swallow a cancellation that arrives just as
    the awaited thing completes (python/cpython#86296); a ``while True`` loop
    then carries on and a plain ``cancel(); await task`` hangs for ever. Cancel
    again until the task is done."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("ibhost").error("%s ended with %r", task.get_name(),
                                          task.exception())


def rss_mib(pid: int) -> float:
    """The resident size of process ``pid`` in MiB (/proc, else ``ps`` as on macOS);
    NaN when neither knows the process (gone: no size, not a size of 0)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import subprocess

    try:
        out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True,
                             text=True)
    except OSError:
        return float("nan")
    rss = out.stdout.strip()
    return int(rss) / 1024 if rss.isdigit() else float("nan")
