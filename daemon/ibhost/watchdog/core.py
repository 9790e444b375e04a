"""The watchdog loop: probe, see sleep/wake, escalate to supervisord restarts.

Soft probe failure -> logged and counted; ``fail_threshold`` in a row -> restart
through supervisord's XML-RPC (never by killing pids), then ``restart_cooldown``
before the same program is restarted again. Inside IB's maintenance windows
nothing is escalated. A wake (clock jump or ``POST /wake``) asks the connector
to reconnect at once instead of waiting for heartbeats to fail.

IB outages are followed too: one that began inside a maintenance window and
outlives it by ``outage_grace`` (IB Gateway left at its login screen after the
nightly reset), or any that lasts ``outage_alert_after``, is escalated once: an
error in the log, a metric, ``alert_command`` and, with IBC, a RESTART.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shlex
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..connector.client import ConnectorClient
from ..ipc import IpcError
from ..ipc.client import UnixClient
from ..proc import cancel_and_wait
from .clock import SleepDetector
from .maintenance import Schedule

log = logging.getLogger("ibhost.watchdog")


@dataclass
class Watch:
    program: str  # supervisor name, e.g. "ibhost:connector"
    probe: Callable[[], Awaitable[None]]  # raises when the program does not answer
    consecutive: int = 0
    failures_total: int = 0
    last_probe_at: float | None = None
    last_ok_at: float | None = None
    last_error: str | None = None
    restarts: list[dict[str, Any]] = field(default_factory=list)
    last_restart_mono: float = -1e9

    def as_dict(self) -> dict[str, Any]:
        return {"program": self.program, "consecutiveFailures": self.consecutive,
                "failuresTotal": self.failures_total, "lastProbeAt": self.last_probe_at,
                "lastOkAt": self.last_ok_at, "lastError": self.last_error,
                "restarts": self.restarts[-20:], "restartsTotal": len(self.restarts)}


# why an outage was escalated: it outlasted a maintenance window, outlasted IB's
# weekly restart (a new login is needed), or lasted outage_alert_after
CAUSES = ("after_maintenance", "login_required", "long_outage")


def weekly(window: str) -> bool:
    """Is this maintenance window a weekly one (IB's weekly restart), not daily?"""
    return not window.strip().lower().startswith("daily")


@dataclass
class Outage:
    """The IB connection is down (the connector answers, IB does not)."""

    since: float
    window: str | None  # the maintenance window it began in
    window_ended_at: float | None = None
    escalated_at: float | None = None
    cause: str | None = None  # CAUSES
    message: str | None = None
    next_ibc_at: float | None = None

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"since": self.since, "downSeconds": round(now - self.since, 1),
                "beganInMaintenance": self.window, "windowEndedAt": self.window_ended_at,
                "escalatedAt": self.escalated_at, "cause": self.cause,
                "message": self.message}


class Supervisor:
    """supervisord's XML-RPC interface, called off the event loop."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.env = dict(env)

    @property
    def available(self) -> bool:
        return bool(self.env.get("SUPERVISOR_SERVER_URL"))

    def _rpc(self) -> Any:
        from supervisor import childutils

        return childutils.getRPCInterface(self.env)

    def _restart(self, name: str) -> None:
        # supervisor's own fault codes, imported here: the XML-RPC client costs ~40 ms
        # at import and is needed only when something must be restarted
        import xmlrpc.client

        from supervisor.xmlrpc import Faults

        sup = self._rpc().supervisor
        try:
            sup.signalProcess(name, "CONT")  # a stopped (SIGSTOP) process can then exit
        except xmlrpc.client.Fault as f:
            if f.faultCode not in (Faults.NOT_RUNNING, Faults.BAD_SIGNAL):
                raise
        try:
            sup.stopProcess(name)
        except xmlrpc.client.Fault as f:
            if f.faultCode != Faults.NOT_RUNNING:
                raise
        try:
            sup.startProcess(name)
        except xmlrpc.client.Fault as f:
            if f.faultCode != Faults.ALREADY_STARTED:
                raise

    async def restart(self, name: str) -> None:
        await asyncio.to_thread(self._restart, name)


class Watchdog:
    def __init__(self, cfg: Config, *, supervisor: Supervisor | None = None,
                 detector: SleepDetector | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        w = cfg.watchdog
        self.wall = wall
        self.supervisor = supervisor or Supervisor()
        self.detector = detector or SleepDetector(w.jump_threshold)
        self.schedule = Schedule(w.region, w.maintenance, w.maintenance_tz)
        self.connector = ConnectorClient(str(cfg.connector_socket),
                                         connect_timeout=w.probe_timeout,
                                         read_timeout=w.probe_timeout)
        self.gateway = UnixClient(f"http://{cfg.gateway.host}:{cfg.gateway.port}",
                                  tcp=(cfg.gateway.host, cfg.gateway.port),
                                  connect_timeout=w.probe_timeout, read_timeout=w.probe_timeout)
        self.gapfill = UnixClient(str(cfg.path(cfg.gapfill.socket)),
                                  connect_timeout=w.probe_timeout, read_timeout=w.probe_timeout)
        self.watches = [Watch("ibhost:connector", self._probe_connector),
                        Watch("ibhost:gapfill", self._probe_gapfill),
                        Watch("ibhost:gateway", self._probe_gateway)]
        self.wakes: list[dict[str, Any]] = []
        self.maintenance: str | None = None
        self.connector_health: dict[str, Any] | None = None
        self.ibc_commands: list[dict[str, Any]] = []
        self.outage: Outage | None = None
        self.escalations: list[dict[str, Any]] = []  # the last 20
        self.escalation_counts: Counter[str] = Counter()
        self._farm_lost_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    # --- probes ------------------------------------------------------------------------

    async def _probe_connector(self) -> None:
        self.connector_health = await self.connector.health()

    async def _probe_gapfill(self) -> None:
        await self.gapfill.request("GET", "/health")

    async def _probe_gateway(self) -> None:
        status = await self.gateway.status("GET", "/ping")
        if status != 200:
            raise RuntimeError(f"/ping answered {status}")

    # --- wake --------------------------------------------------------------------------

    async def wake(self, source: str) -> dict[str, Any]:
        """The machine woke up: reconnect now rather than wait for heartbeats to fail."""
        entry: dict[str, Any] = {"at": self.wall(), "source": source, "reconnect": None}
        log.warning("wake (%s): asking the connector to reconnect", source)
        try:
            await self.connector.reconnect(f"wake: {source}")
            entry["reconnect"] = "requested"
        except Exception as e:  # the connector may itself be restarting
            entry["reconnect"] = f"failed: {e}"
            log.warning("wake: reconnect request failed: %s", e)
        self.wakes.append(entry)
        return entry

    # --- loop --------------------------------------------------------------------------

    async def tick(self) -> None:
        slept = self.detector.check()
        if slept is not None:
            await self.wake(f"clock jump of {slept:.1f}s")
        now = self.wall()
        window = self.schedule.active(dt.datetime.fromtimestamp(now, dt.UTC))
        if (window.text if window else None) != self.maintenance:
            log.info("maintenance window %s", f"'{window.text}' began" if window else "ended")
        self.maintenance = window.text if window else None
        for w in self.watches:
            await self._check(w, now)
        await self._follow_outage(now)
        if self.cfg.watchdog.ibc_enabled:
            await self._ibc(now)

    async def _check(self, w: Watch, now: float) -> None:
        w.last_probe_at = now
        try:
            await asyncio.wait_for(w.probe(), self.cfg.watchdog.probe_timeout)
        except (TimeoutError, IpcError, OSError, RuntimeError) as e:
            w.consecutive += 1
            w.failures_total += 1
            w.last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            log.warning("%s probe failed (%s in a row): %s", w.program, w.consecutive,
                        w.last_error)
            await self._escalate(w, now)
            return
        w.consecutive = 0
        w.last_ok_at = now
        w.last_error = None

    async def _escalate(self, w: Watch, now: float) -> None:
        cfg = self.cfg.watchdog
        if w.consecutive < cfg.fail_threshold:
            return
        if self.maintenance:
            log.info("%s not answering during maintenance '%s': not restarting", w.program,
                     self.maintenance)
            return
        if time.monotonic() - w.last_restart_mono < cfg.restart_cooldown:
            return
        if not self.supervisor.available:
            log.error("%s needs a restart but supervisord is not reachable "
                      "(SUPERVISOR_SERVER_URL unset)", w.program)
            return
        reason = f"{w.consecutive} failed probes: {w.last_error}"
        log.error("restarting %s through supervisord: %s", w.program, reason)
        w.last_restart_mono = time.monotonic()
        entry = {"at": now, "reason": reason, "result": "restarting"}
        w.restarts.append(entry)  # visible in /status while supervisord restarts it
        try:
            await self.supervisor.restart(w.program)
            w.consecutive = 0
            entry["result"] = "ok"
        except Exception as e:
            entry["result"] = f"failed: {e}"
            log.error("restart of %s failed: %s", w.program, e)

    async def _follow_outage(self, now: float) -> None:
        h = self.connector_health
        if h is None or h.get("status") not in ("down", "maintenance"):
            if self.outage is not None and h is not None:
                log.info("IB connection back after %.0fs down", now - self.outage.since)
                self.outage = None
            return  # (a connector that does not answer is restarted as a program)
        o = self.outage
        if o is None:
            o = self.outage = Outage(since=now, window=self.maintenance)
        if self.maintenance:
            return  # a reset in progress: expected
        cfg = self.cfg.watchdog
        if o.window and o.window_ended_at is None:
            o.window_ended_at = now
        if o.escalated_at is not None:
            return
        down = now - o.since
        if o.window and o.window_ended_at is not None and \
                now - o.window_ended_at >= cfg.outage_grace:
            reason = h.get('reason') or 'no reason given'
            if weekly(o.window):
                # IB's weekly restart logs everyone out: IB Gateway (or IBC) waits for
                # a new login, with the second factor, and nothing comes back before it
                o.cause = "login_required"
                o.message = (f"IB connection down for {down:.0f}s: IB's weekly restart "
                             f"('{o.window}') ended {now - o.window_ended_at:.0f}s ago and "
                             f"IB Gateway has not come back; it is most likely waiting for "
                             f"a login: log in, or approve the second factor (IBKR Mobile) "
                             f"({reason})")
            else:
                o.cause = "after_maintenance"
                o.message = (f"IB connection down for {down:.0f}s: it went down inside the "
                             f"maintenance window '{o.window}' and is still down "
                             f"{now - o.window_ended_at:.0f}s after it ended; IB Gateway "
                             f"may be at its login screen ({reason})")
            o.next_ibc_at = now  # the reset did not come back: restart it now
        elif not o.window and down >= cfg.outage_alert_after:
            o.cause = "long_outage"
            o.message = (f"IB connection down for {down:.0f}s "
                         f"({h.get('reason') or 'no reason given'})")
            o.next_ibc_at = o.since + cfg.ibc_restart_after
        else:
            return
        o.escalated_at = now
        log.error("escalating: %s", o.message)
        entry: dict[str, Any] = {"at": now, "cause": o.cause, "message": o.message,
                                 "alertCommand": None}
        self.escalations = [*self.escalations[-19:], entry]
        self.escalation_counts[o.cause] += 1
        if cfg.alert_command:
            entry["alertCommand"] = await self._alert(o)

    async def _alert(self, o: Outage) -> str:
        """Run ``alert_command`` (split like a shell would, not run by one)."""
        cmd = self.cfg.watchdog.alert_command
        env = {**os.environ, "IBHOST_ALERT_CAUSE": o.cause or "",
               "IBHOST_ALERT_MESSAGE": o.message or "",
               "IBHOST_ALERT_SINCE": dt.datetime.fromtimestamp(o.since, dt.UTC).isoformat()}
        try:
            proc = await asyncio.create_subprocess_exec(
                *shlex.split(cmd), env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        except (OSError, ValueError) as e:
            log.error("alert_command could not run: %s", e)
            return f"failed: {e}"
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.error("alert_command did not finish in 30s; killed")
            return "failed: timed out after 30s"
        if proc.returncode:
            log.error("alert_command exited %s: %s", proc.returncode,
                      err.decode(errors="replace").strip()[-500:])
            return f"failed: exit {proc.returncode}"
        return "ok"

    async def _ibc(self, now: float) -> None:
        """Optional IBC command server: RECONNECTDATA on farm loss, RESTART when an
        outage is escalated after a maintenance window (at once) or lasts
        ``ibc_restart_after``, and again every ``ibc_restart_after`` while it lasts."""
        cfg = self.cfg.watchdog
        h = self.connector_health or {}
        farms = h.get("farms") or {}
        if any(v == "broken" for v in farms.values()):
            self._farm_lost_since = self._farm_lost_since or now
            if now - self._farm_lost_since >= cfg.ibc_farm_loss_after:
                await self.ibc("RECONNECTDATA")
                self._farm_lost_since = now
        else:
            self._farm_lost_since = None
        o = self.outage
        if o is None or self.maintenance:
            return
        if o.next_ibc_at is None:
            o.next_ibc_at = (o.window_ended_at or o.since) + cfg.ibc_restart_after
        if now >= o.next_ibc_at:
            await self.ibc("RESTART")
            o.next_ibc_at = now + cfg.ibc_restart_after

    async def ibc(self, command: str) -> str:
        cfg = self.cfg.watchdog
        entry: dict[str, Any] = {"at": self.wall(), "command": command}
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(cfg.ibc_host, cfg.ibc_port), 5)
            writer.write(command.encode() + b"\n")
            await writer.drain()
            answer = (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
            writer.close()
            entry["answer"] = answer
        except (OSError, TimeoutError) as e:
            entry["answer"] = f"failed: {e}"
        log.warning("IBC %s -> %s", command, entry["answer"])
        self.ibc_commands.append(entry)
        return str(entry["answer"])

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("watchdog tick failed")
            await asyncio.sleep(self.cfg.watchdog.probe_interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="watchdog")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.connector.close()
        await self.gapfill.close()
        await self.gateway.close()

    def status(self) -> dict[str, Any]:
        return {
            "programs": {w.program: w.as_dict() for w in self.watches},
            "wakes": self.wakes[-20:], "wakesTotal": len(self.wakes),
            "maintenance": self.maintenance,
            "outage": self.outage.as_dict(self.wall()) if self.outage else None,
            "escalations": self.escalations,
            "maintenanceWindows": [w.text for w in self.schedule.windows],
            "supervisor": self.supervisor.available,
            "connectorHealth": self.connector_health,
            "ibc": {"enabled": self.cfg.watchdog.ibc_enabled,
                    "commands": self.ibc_commands[-20:]},
        }
