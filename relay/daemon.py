"""`relay serve`: the daemon's life (uvicorn's shape): signals -> startup -> main loop ->
graceful drain with a deadline.

`Daemon` assembles the components from a configuration and is usable in-process (tests
drive it with a manual clock); `serve` runs one under uvloop until SIGTERM/SIGINT, and
reloads the configuration on SIGHUP (a bad new configuration is refused, the old one kept).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from relay.admin.api import routes as admin_routes
from relay.admin.http import start_admin
from relay.bind.build import selector_from_config
from relay.bind.suspensions import SuspensionTable
from relay.config import ConfigError, load, resolve
from relay.config.model import Config
from relay.deliver.dns import DnsResolver
from relay.deliver.route import Router
from relay.dispose.bounce import Bouncer
from relay.dispose.events import EventLog
from relay.dispose.feedback import parse_arf
from relay.inject.server import Listeners, start_listeners
from relay.schedule.adaptive_link import AdaptiveLink
from relay.schedule.clock import Clock, SystemClock
from relay.schedule.delivery_policy import delivery_policy
from relay.schedule.policy import PolicyCache
from relay.schedule.scheduler import Scheduler
from relay.schedule.smtp_transport import HostGates, SmtpTransport
from relay.spool.model import Envelope, NewMessage
from relay.spool.store import Spool
from relay.wiring import inject_settings

log = logging.getLogger("relay")
ADAPTIVE_STATE = "adaptive-state.json"
STATE_SAVE_INTERVAL = 10.0


class Handoff:
    """What injection stores through: spool first (durable), then the scheduler. Mail to
    the FBL address is read as a complaint report and counted, not relayed."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.fbl_address = str(daemon.option("fbl_address") or "").lower() or None

    async def store(self, message: NewMessage, /) -> Envelope:
        daemon = self.daemon
        assert daemon.spool is not None and daemon.scheduler is not None
        if self.fbl_address is not None and self.fbl_address in (
            r.lower() for r in message.recipients
        ):
            self._complaint(message)
            rest = tuple(r for r in message.recipients if r.lower() != self.fbl_address)
            if not rest:
                return Envelope(
                    "fbl-report", message.sender, message.binding_group, None, message.received_at
                )
            message = replace(message, recipients=rest)
        envelope = await daemon.spool.store(message)
        daemon.events(
            "reception",
            {
                "message_id": envelope.message_id,
                "sender": message.sender,
                "recipients": len(message.recipients),
                "binding_group": message.binding_group,
                "binding": message.binding,
                "size": len(message.content),
            },
        )
        daemon.scheduler.submit(envelope)
        return envelope

    def _complaint(self, message: NewMessage) -> None:
        complaint = parse_arf(message.content)
        if complaint is None:
            log.warning(
                "mail to the FBL address from %s is not an ARF report relay can attribute; dropped",
                message.sender or "<>",
            )
            self.daemon.events("fbl_unattributed", {"sender": message.sender})
            return
        if self.daemon.adaptive is not None:
            self.daemon.adaptive.record_complaint(
                complaint.binding,
                complaint.domain,
                complaint.feedback_type,
                self.daemon.clock.now(),
            )
        if self.daemon.scheduler is not None:
            self.daemon.scheduler.wake()  # apply what the engine decided
        self.daemon.events(
            "fbl_complaint",
            {
                "binding": complaint.binding,
                "domain": complaint.domain,
                "feedback_type": complaint.feedback_type,
                "message_id": complaint.message_id,
            },
        )


class Daemon:
    def __init__(self, config: Config, path: str | None = None, clock: Clock | None = None):
        self.config = config
        self.path = path
        self.clock: Clock = clock or SystemClock()
        self.suspensions = SuspensionTable()
        self.spool: Spool | None = None
        self.scheduler: Scheduler | None = None
        self.listeners: Listeners | None = None
        self.events = EventLog(None)
        self.bouncer: Bouncer | None = None
        self.adaptive: AdaptiveLink | None = None
        self._background: list[asyncio.Task[None]] = []
        self.admin: asyncio.Server | None = None

    def option(self, name: str) -> Any:
        return resolve(self.config, name).value

    async def start(self) -> None:
        config = self.config
        self.events = EventLog(self.option("event_log"))
        spoolbase = Path(str(self.option("spoolbase")))
        await asyncio.to_thread(spoolbase.mkdir, parents=True, exist_ok=True)
        self.spool = await Spool.open(
            spoolbase,
            fsync=bool(self.option("force_fsync")),
            max_resident_messages=int(self.option("max_resident_messages")),
            clock=self.clock.now,
        )
        selector, unplumbed = selector_from_config(config, self.suspensions)
        for binding, address in unplumbed:
            log.warning(
                "binding %s: bind_address %s is not plumbed on this host; skipped", binding, address
            )
            self.events("unplumbed", {"binding": binding, "bind_address": address})
        resolver = DnsResolver(str(self.option("resolv_conf")), port=int(self.option("dns_port")))
        router = Router(
            resolver, mx_failures_fallback_to_a=self.option("mx_failures_fallback_to_a")
        )
        gates = HostGates(self._host_limit)
        self.adaptive = AdaptiveLink(
            config,
            self.suspensions,
            self.events,
            state_path=spoolbase / ADAPTIVE_STATE,
        )
        await asyncio.to_thread(self.adaptive.restore)
        self.scheduler = Scheduler(
            self.spool,
            PolicyCache(config, delivery_policy),
            selector,
            SmtpTransport(router, gates),
            self.clock,
            events=self.events,
            adaptive=self.adaptive,
        )
        self.adaptive.send_alert = self._send_own_mail
        self.bouncer = Bouncer(
            self.spool,
            self.scheduler.submit,
            str(self.option("hostname")),
            self.clock,
            self.events,
            group=str(self.option("dsn_binding_group")),
        )
        self.scheduler.on_failed = self.bouncer
        self.scheduler.on_delayed = functools.partial(self.bouncer, action="delayed")
        recovered = self.spool.scan()
        for envelope in recovered:
            self.scheduler.submit(envelope)
        if recovered:
            log.info("requeued %d spooled messages", len(recovered))
        self.scheduler.start()
        self._background.append(
            asyncio.create_task(self.adaptive.keep_saving(STATE_SAVE_INTERVAL, self.clock.sleep))
        )
        admin = self.option("admin_listen")
        if admin is not None:
            self.admin = await start_admin(
                admin.host or "127.0.0.1", admin.port or 2580, admin_routes(self)
            )
        self.listeners = await start_listeners(
            inject_settings(config),
            Handoff(self),
            clock=self.clock.now,
        )

    async def _send_own_mail(
        self, sender: str, recipients: tuple[str, ...], content: bytes
    ) -> None:
        """Queue a message of relay's own (adaptive alerts) like any other."""
        assert self.spool is not None and self.scheduler is not None
        envelope = await self.spool.store(
            NewMessage(
                sender,
                recipients,
                str(self.option("dsn_binding_group")),
                None,
                content,
                self.clock.now(),
            )
        )
        self.scheduler.submit(envelope)

    def binding_address(self, binding: str) -> str | None:
        value = resolve(self.config, "bind_address", binding=binding).value
        return None if value is None else str(value)

    def _host_limit(self, binding: str, ip: str) -> int:
        value = resolve(self.config, "max_outbound_connections", binding=binding, host=ip).value
        return -1 if value is None else int(value)

    def reload(self, config: Config) -> None:
        """Apply a new, already validated configuration to delivery. Listener changes
        (addresses, TLS files) take effect on restart."""
        self.config = config
        if self.scheduler is not None:
            selector, _ = selector_from_config(config, self.suspensions)
            self.scheduler.reload(config, selector)
        log.info("configuration reloaded")

    async def stop(self, deadline: float | None = None) -> None:
        grace = float(self.option("shutdown_timeout")) if deadline is None else deadline
        if self.listeners is not None:
            await self.listeners.close(grace=grace)
        if self.admin is not None:
            self.admin.close()
        if self.scheduler is not None:
            await self.scheduler.stop(deadline=grace)
        for task in self._background:
            task.cancel()
        if self.adaptive is not None:
            await self.adaptive.save()
        if self.spool is not None:
            await self.spool.close()
        self.events.close()


async def _main(config: Config, path: str) -> int:
    daemon = Daemon(config, path)
    await daemon.start()
    assert daemon.listeners is not None
    for bound in daemon.listeners.bound:
        print(f"relay: listening on {bound.listen}", flush=True)
    if daemon.admin is not None:
        print(f"relay: admin API on {daemon.option('admin_listen')}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> None:
        try:
            new = load(path)
        except ConfigError as err:
            log.error("reload refused, keeping the running configuration:\n%s", err)
            return
        daemon.reload(new)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    log.info("stopping: no new connections; draining")
    await daemon.stop()
    return 0


def serve(config: Config, path: str) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    for warning in config.warnings:
        log.warning("%s", warning)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_main(config, path))
