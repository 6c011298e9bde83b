"""`relay serve`: the daemon's life (uvicorn's shape): signals -> startup -> main loop ->
graceful drain with a deadline.

`Daemon` assembles the components from a configuration and is usable in-process (tests
drive it with a manual clock); `serve` runs one under uvloop until SIGTERM/SIGINT, and
reloads the configuration on SIGHUP (a bad new configuration is refused, the old one kept)
and rotates the event log on SIGUSR1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import ssl
import sys
import tempfile
from pathlib import Path

from relay import heap
from relay.admin.api import routes as admin_routes
from relay.admin.auth import Token, TokenFileError, load_tokens
from relay.admin.http import MAX_BODY, AdminServer, start_admin
from relay.admin.idempotency import FILE as IDEMPOTENCY_FILE
from relay.admin.idempotency import IdempotencyStore
from relay.bind.build import build_selector
from relay.bind.suspensions import SuspensionTable
from relay.clock import Clock, SystemClock
from relay.cluster.node import ClusterNode, read_password
from relay.config import ConfigError, Location, Problem, load
from relay.config.model import Config
from relay.control import DaemonControl
from relay.deliver.dns import DnsResolver
from relay.deliver.route import Router
from relay.deliver.sts_fetch import PolicyStore, StsPolicies
from relay.deliver.tls_policy import OutboundTls
from relay.deliver.tls_report_send import TlsReports
from relay.dispose.bounce import Bouncer
from relay.dispose.events import EventLog
from relay.dispose.feedback import Complaint
from relay.handoff import Handoff
from relay.inject.auth import CredentialsError
from relay.inject.server import Listeners, start_listeners
from relay.inject.shared_counts import zero_worker
from relay.notify.settings import WebhookSettings
from relay.notify.webhook import Webhook
from relay.outcome import Reply
from relay.schedule.adaptive_link import AdaptiveLink
from relay.schedule.holds import HoldTable
from relay.schedule.holds import load as load_holds
from relay.schedule.jobs import Job
from relay.schedule.providers import ProviderDirectory
from relay.schedule.scheduler import Scheduler
from relay.schedule.smtp_transport import HostGates, SmtpTransport
from relay.schedule.warmup import WarmupCounts
from relay.spool.fileops import FileOps
from relay.spool.model import Envelope, NewMessage
from relay.spool.statistics import SpoolStatistics
from relay.spool.store import Spool
from relay.suppress.service import SuppressionList, action_of
from relay.wiring import DaemonSettings, Settings, compile_settings
from relay.workers.shards import ShardedSpool

log = logging.getLogger("relay")
ADAPTIVE_STATE = "adaptive-state.json"
HOLDS_STATE = "holds.json"  # tenant/campaign holds with their end times (schedule/holds.py)
WARMUP_STATE = "warmup.json"  # warm-up counts per UTC day (or hour) and bindings' ages
STATE_SAVE_INTERVAL = 10.0
# Warm-up counts are saved this often while they change: a binding on a cap of a few
# hundred a day can reach it in a second, and a count lost to a crash would be sent again.
WARMUP_SAVE_INTERVAL = 0.5
MTA_STS_STORE = "mtasts"  # directory in the spool (mta_sts_policy_store unset)
MTA_STS_FILE = "policies.json"
TLS_REPORT_STATE = "tls-report-counts.json"
TLS_REPORT_INTERVAL = 600.0  # save the TLS counts / send finished days' reports


class Daemon:
    def __init__(
        self,
        config: Config,
        path: str | None = None,
        clock: Clock | None = None,
        file_ops: FileOps | None = None,
    ):
        """file_ops: the spool's file calls (tests inject disk faults there)."""
        self.config = config
        self.file_ops = file_ops
        self.settings: Settings = compile_settings(config)
        self.path = path
        self.clock: Clock = clock or SystemClock()
        self.suspensions = SuspensionTable()
        self.spool: Spool | None = None
        self.scheduler: Scheduler | None = None
        self.listeners: Listeners | None = None
        self.events = EventLog(None)
        self.bouncer: Bouncer | None = None
        self.adaptive: AdaptiveLink | None = None
        self.gates: HostGates | None = None
        self.cluster: ClusterNode | None = None
        self.outbound_tls: OutboundTls | None = None
        self.tls_reports: TlsReports | None = None
        self._background: list[asyncio.Task[None]] = []
        self.admin: AdminServer | None = None
        self.idempotency: IdempotencyStore | None = None
        self.handoff: Handoff | None = None
        self.ready = False  # recovery finished, injection listening
        self.webhooks: list[Webhook] = []
        self.shards: ShardedSpool | None = None
        self.last_spool_statistics: dict[str, SpoolStatistics] = {}
        self.workers: list[asyncio.subprocess.Process] = []
        self.suppression: SuppressionList | None = None  # None: suppression_enabled = false
        self._stopping = False

    async def start(self) -> None:
        settings = self.settings
        options = settings.daemon
        admin_access = await asyncio.to_thread(_admin_access, options)  # ConfigError first
        hooks = await asyncio.to_thread(_webhook_secrets, options)
        self.events = EventLog(
            options.event_log,
            max_size=options.event_log_max_size,
            keep=options.event_log_keep,
            clock=self.clock,
        )
        spoolbase = options.spoolbase
        await asyncio.to_thread(spoolbase.mkdir, parents=True, exist_ok=True)
        self.spool = await Spool.open(
            spoolbase,
            fsync=options.force_fsync,
            max_resident_messages=options.max_resident_messages,
            clock=self.clock.now,
            file_ops=self.file_ops,
        )
        if options.suppression_enabled:
            self.suppression = SuppressionList(
                spoolbase, action=action_of(options.suppression_action), clock=self.clock.now
            )
            await self.suppression.open(writer=True)
            self.suppression.memory.on_drop = functools.partial(self.events, "suppressed")
        selector, unplumbed = build_selector(
            settings.groups, settings.bindings.values(), self.suspensions
        )
        for binding, address in unplumbed:
            log.warning(
                "binding %s: bind_address %s is not plumbed on this host; skipped", binding, address
            )
            self.events("unplumbed", {"binding": binding, "bind_address": address})
        resolver = DnsResolver(options.resolv_conf, port=options.dns_port)
        router = Router(resolver, mx_failures_fallback_to_a=options.mx_failures_fallback_to_a)
        self.gates = HostGates(settings.host_limits)
        self.outbound_tls, tls_reports = await self._outbound_tls(resolver, spoolbase)
        self.tls_reports = tls_reports
        self.adaptive = AdaptiveLink(
            settings.routes,
            self.suspensions,
            self.events,
            state_path=spoolbase / ADAPTIVE_STATE,
        )
        await asyncio.to_thread(self.adaptive.restore)
        worker_count = options.injection_workers
        spool_access: Spool | ShardedSpool = self.spool
        if worker_count:
            self.shards = ShardedSpool(
                self.spool,
                self.queue,
                self.count_complaint,
                options.max_resident_messages,
                on_event=self.events,
            )
            spool_access = self.shards
        if settings.cluster is not None:
            self.cluster = ClusterNode(
                settings.cluster, self._queue_size, read_password(settings.cluster)
            )
            await self.cluster.start()
            # host-scope cluster_scope_max_outbound_connections: leases at connect time
            self.gates.shared, self.gates.now = self.cluster.limits, self.clock.now
        self.scheduler = Scheduler(
            spool_access,
            settings.routes,
            selector,
            SmtpTransport(router, self.gates, self.outbound_tls),
            self.clock,
            events=self.events,
            adaptive=self.adaptive,
            shared=self.cluster.limits if self.cluster is not None else None,
            providers=ProviderDirectory(settings.providers),
            mx_lookup=router.mx_host_names,
            warmup=await asyncio.to_thread(_load_warmup, spoolbase / WARMUP_STATE),
            warmup_path=spoolbase / WARMUP_STATE,
            fairness=settings.fairness,
            holds=await asyncio.to_thread(_load_holds, spoolbase / HOLDS_STATE, self.clock.now()),
            holds_path=spoolbase / HOLDS_STATE,
        )
        self.adaptive.send_alert = self._send_own_mail
        if self.cluster is not None:
            await self.cluster.share_holds(self.adaptive, self.clock.now, self.scheduler.wake)
        self.bouncer = Bouncer(
            spool_access,
            self.scheduler.submit,
            options.hostname,
            self.clock,
            self.events,
            group=options.dsn_binding_group,
        )
        self.scheduler.outcomes.notifier = self.bouncer
        self.scheduler.outcomes.on_invalid_recipient = self._invalid_recipient
        recovered = self.spool.scan()
        for envelope in recovered:
            self.scheduler.submit(envelope)
        if recovered:
            log.info("requeued %d spooled messages", len(recovered))
        self.scheduler.start()
        self._background.append(
            asyncio.create_task(self.adaptive.keep_saving(STATE_SAVE_INTERVAL, self.clock.sleep))
        )
        self._background.append(
            asyncio.create_task(tls_reports.run(self.clock.sleep, TLS_REPORT_INTERVAL))
        )
        self._background.append(
            asyncio.create_task(
                self.scheduler.keep_saving_warmup(WARMUP_SAVE_INTERVAL, self.clock.sleep)
            )
        )
        self.handoff = Handoff(
            self.spool.submit,
            self.announce,
            self.complaint,
            options.fbl_address,
            note=self.events,
        )
        admin = options.admin_listen
        if admin is not None:
            self.idempotency = IdempotencyStore(spoolbase / IDEMPOTENCY_FILE, self.clock.now)
            await self.idempotency.open()
            tokens, tls = admin_access
            message_size = settings.inject.max_message_size
            self.admin = await start_admin(
                admin.host or "127.0.0.1",
                admin.port or 2580,
                admin_routes(DaemonControl(self), self.idempotency),
                tokens=tokens,
                tls=tls,
                metrics_require_token=options.metrics_require_token,
                # JSON escapes can double a message's size
                max_body=2 * message_size + MAX_BODY if message_size else 256 * MAX_BODY,
            )
        if self.shards is not None:
            await self._start_workers(worker_count, spoolbase)
        else:
            self.listeners = await start_listeners(
                settings.inject,
                self.handoff,
                clock=self.clock.now,
                suppression=None if self.suppression is None else self.suppression.memory,
            )
        log_path = Path(options.event_log) if options.event_log else None
        for hook in hooks:
            assert log_path is not None  # wiring refuses a webhook without an event log
            webhook = Webhook(hook, log_path, options.event_log_keep, self.clock)
            self.webhooks.append(webhook)
            self._background.append(asyncio.create_task(webhook.run(), name=f"webhook-{hook.name}"))
        self.ready = True

    async def _start_workers(self, count: int, spoolbase: Path) -> None:
        """Injection in `count` worker processes, each with its own spool shard."""
        assert self.shards is not None
        if self.path is None:
            raise ConfigError(
                [
                    Problem(
                        Location("<daemon>", 0, 0),
                        "injection_workers needs a configuration file",
                        "injection_workers",
                    )
                ]
            )
        socket_path = worker_socket_path(spoolbase)
        await self.shards.serve(socket_path)
        for index in range(1, count + 1):
            self._background.append(
                asyncio.create_task(self._supervise(index, socket_path), name=f"worker-{index}")
            )
        await _wait_listening([lst.address for lst in self.settings.inject.listeners])
        # Listening means one worker is up; ready means every one is (each says hello on
        # the shard socket once its spool shard is open).
        if not await self.shards.wait_connected(count, within=30.0):
            log.warning(
                "%d of %d injection workers connected after 30 s", len(self.shards.links), count
            )

    async def _supervise(self, index: int, socket_path: str) -> None:
        """Run injection worker `index`, restarting it if it dies."""
        assert self.path is not None
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "relay.workers.inject_worker",
                self.path,
                str(index),
                socket_path,
            )
            self.workers.append(proc)
            code = await proc.wait()
            self.workers.remove(proc)
            # Its connections died with it: they no longer count in the shared totals.
            count = self.settings.daemon.injection_workers
            await asyncio.to_thread(
                zero_worker, self.settings.daemon.spoolbase, max(count, index), index - 1
            )
            if self._stopping:
                return
            log.error("injection worker %d exited with %s; restarting", index, code)
            await asyncio.sleep(1.0)

    async def _outbound_tls(
        self, resolver: DnsResolver, spoolbase: Path
    ) -> tuple[OutboundTls, TlsReports]:
        """MTA-STS policies (cached in mta_sts_policy_store), DANE lookups and the TLS
        report counts (in the spool directory)."""
        options = self.settings.daemon
        store_dir = options.mta_sts_policy_store or spoolbase / MTA_STS_STORE
        await asyncio.to_thread(store_dir.mkdir, parents=True, exist_ok=True)
        store = PolicyStore(store_dir / MTA_STS_FILE)
        sts = await asyncio.to_thread(
            StsPolicies, resolver, store, self.clock.now, https_port=options.mta_sts_https_port
        )
        reports = await asyncio.to_thread(
            TlsReports,
            spoolbase / TLS_REPORT_STATE,
            resolver,
            self.clock.now,
            organization=options.tls_report_organization or options.hostname,
            contact=options.tls_report_contact or f"postmaster@{options.hostname}",
            send_mail=self._send_own_mail,
            enabled=options.tls_reporting,
            ca_file=options.tls_ca,
        )
        return OutboundTls(resolver, sts, reports.counts, self.clock.now), reports

    def _reload_outbound_tls(
        self, options: DaemonSettings, tls: OutboundTls, reports: TlsReports
    ) -> None:
        """The TLS policy options a reload changes at once (the policy store stays)."""
        tls.sts.https_port = options.mta_sts_https_port
        reports.enabled = options.tls_reporting
        reports.organization = options.tls_report_organization or options.hostname
        reports.contact = options.tls_report_contact or f"postmaster@{options.hostname}"
        reports.ca_file = options.tls_ca

    async def _send_own_mail(
        self, sender: str, recipients: tuple[str, ...], content: bytes
    ) -> None:
        """Queue a message of relay's own (adaptive alerts) like any other."""
        assert self.spool is not None and self.scheduler is not None
        envelope = await self.spool.store(
            NewMessage(
                sender,
                recipients,
                self.settings.daemon.dsn_binding_group,
                None,
                content,
                self.clock.now(),
            )
        )
        self.scheduler.submit(envelope)

    def _queue_size(self) -> int:
        """Jobs waiting or in flight here (the cluster heartbeat reports it)."""
        if self.scheduler is None:
            return 0
        stats = self.scheduler.statistics()
        return stats.scheduled + stats.due + stats.ready + stats.in_flight

    async def spool_statistics(self) -> dict[str, SpoolStatistics]:
        """The daemon's own spool ("local") and, with injection workers, each shard; the
        last figures are kept for the metrics collector (which cannot wait)."""
        if self.spool is None:
            return {}
        parts = {"local": self.spool.statistics()}
        if self.shards is not None:
            parts.update(await self.shards.shard_statistics())
        self.last_spool_statistics = parts
        return parts

    def announce(self, envelope: Envelope, message: NewMessage) -> None:
        """A message injected here is durable: log its reception and queue it."""
        self.queue(envelope, new=True)

    def queue(self, envelope: Envelope, *, new: bool) -> None:
        """Queue a durable message; its reception is logged when it is new (not recovered)."""
        assert self.scheduler is not None
        if new:
            self.events.reception(envelope)
        self.scheduler.submit(envelope)

    def complaint(self, complaint: Complaint | None, message: NewMessage) -> None:
        if complaint is None:
            log.warning(
                "mail to the FBL address from %s is not an ARF report relay can attribute; dropped",
                message.sender or "<>",
            )
            self.events("fbl_unattributed", {"sender": message.sender})
            return
        self.count_complaint(
            complaint.binding,
            complaint.domain,
            complaint.feedback_type,
            complaint.message_id,
            complaint.recipient,
            complaint.tenant,
        )

    def count_complaint(
        self,
        binding: str,
        domain: str,
        kind: str,
        message_id: str,
        recipient: str | None = None,
        tenant: str | None = None,
    ) -> None:
        if self.adaptive is not None:
            self.adaptive.record_complaint(binding, domain, kind, self.clock.now())
        if self.scheduler is not None:
            self.scheduler.wake()  # apply what the engine decided
        self.events(
            "fbl_complaint",
            {
                "binding": binding,
                "domain": domain,
                "feedback_type": kind,
                "message_id": message_id,
                "recipient": recipient,
                "tenant": tenant,
            },
        )
        if recipient is not None:
            self.suppress(tenant, recipient, f"complaint: {kind}", "complaint")

    def _invalid_recipient(self, job: Job, address: str, reply: Reply) -> None:
        self.suppress(job.tenant, address, str(reply), "bounce")

    def suppress(self, tenant: str | None, address: str, reason: str, source: str) -> None:
        """A hard bounce or a complaint puts the recipient on the suppression list (the
        message's tenant's, else the global one)."""
        if self.suppression is not None and self.suppression.record(
            tenant, address, reason, source
        ):
            self.events(
                "suppression_added",
                {"tenant": tenant, "recipient": address, "source": source, "reason": reason},
            )

    def binding_address(self, binding: str) -> str | None:
        found = self.settings.bindings.get(binding)
        return None if found is None else found.bind_address

    async def reload(self, config: Config) -> None:
        """Apply a new, already validated configuration: delivery at once; injection for
        every new session (relay_hosts, limits, binding groups, credentials, TLS files,
        listen addresses), here and in each injection worker (which reads the file again
        on SIGHUP)."""
        settings = compile_settings(config)
        self.config = config
        self.settings = settings
        if self.suppression is not None:  # suppression_enabled itself: at restart
            self.suppression.memory.action = action_of(settings.daemon.suppression_action)
        self.events.max_size = settings.daemon.event_log_max_size
        self.events.keep = settings.daemon.event_log_keep
        if self.gates is not None:
            self.gates.limits = settings.host_limits
        if self.outbound_tls is not None and self.tls_reports is not None:
            self._reload_outbound_tls(settings.daemon, self.outbound_tls, self.tls_reports)
        if self.scheduler is not None:
            selector, _ = build_selector(
                settings.groups, settings.bindings.values(), self.suspensions
            )
            self.scheduler.reload(settings.routes, selector, ProviderDirectory(settings.providers))
        for proc in self.workers:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGHUP)
        if self.admin is not None:
            try:  # new tokens take effect at once; a bad file keeps the old ones
                tokens, _ = await asyncio.to_thread(_admin_access, settings.daemon)
                if tokens is not None or self.admin.access.tokens is None:
                    self.admin.access.tokens = tokens
                else:
                    log.error("admin_token_file unset on reload: the old tokens stay")
            except ConfigError as err:
                log.error("admin tokens not reloaded, the old ones stay: %s", err)
        if self.listeners is not None:
            try:
                await self.listeners.reconfigure(settings.inject)
            except (OSError, ssl.SSLError, CredentialsError) as err:
                log.error("injection settings not reloaded, the old ones stay: %s", err)
        log.info("configuration reloaded")

    async def stop(self, deadline: float | None = None) -> None:
        grace = self.settings.daemon.shutdown_timeout if deadline is None else deadline
        self._stopping = True
        self.ready = False  # /readyz: draining
        if self.listeners is not None:
            await self.listeners.close(grace=grace)
        await self._stop_workers(grace)
        if self.admin is not None:
            await self.admin.close()
        if self.idempotency is not None:
            await self.idempotency.close()
        if self.scheduler is not None:
            await self.scheduler.stop(deadline=grace)
        if self.cluster is not None:
            await self.cluster.stop()  # after the scheduler: its leases are released
        for task in self._background:
            task.cancel()
        if self.shards is not None:
            await self.shards.close()
        if self.adaptive is not None:
            await self.adaptive.save()
        if self.tls_reports is not None:
            await asyncio.to_thread(self.tls_reports.save)
        if self.scheduler is not None:
            await self.scheduler.save_warmup()
            await self.scheduler.save_holds()
        if self.spool is not None:
            await self.spool.close()
        if self.suppression is not None:
            await self.suppression.close()
        self.events.close()

    async def _stop_workers(self, grace: float) -> None:
        """Workers stop accepting and finish their sessions; the scheduler still serves
        their spool requests meanwhile."""
        for proc in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in list(self.workers):
            try:
                await asyncio.wait_for(proc.wait(), grace + 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _load_warmup(path: Path) -> WarmupCounts:
    try:
        return WarmupCounts.load(path)
    except (OSError, ValueError, TypeError, KeyError) as err:
        log.warning("warm-up counts in %s unreadable (%s): starting from zero", path, err)
        return WarmupCounts()


def _load_holds(path: Path, now: float) -> HoldTable:
    try:
        return load_holds(path, now)
    except (OSError, ValueError, TypeError, KeyError) as err:
        log.warning("holds in %s unreadable (%s): starting with none", path, err)
        return HoldTable()


def _admin_access(
    options: DaemonSettings,
) -> tuple[tuple[Token, ...] | None, ssl.SSLContext | None]:
    """The admin API's tokens and TLS context, read now; a bad file is a ConfigError naming
    the option (and, for the token file, its line)."""
    tokens: tuple[Token, ...] | None = None
    if options.admin_token_file is not None:
        try:
            tokens = load_tokens(options.admin_token_file)
        except TokenFileError as err:
            raise ConfigError(
                [Problem(Location(err.path, err.line, 0), err.message, "admin_token_file")]
            ) from None
    tls: ssl.SSLContext | None = None
    if options.admin_tls_certificate is not None and options.admin_tls_key is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(options.admin_tls_certificate, options.admin_tls_key)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(
                [
                    Problem(
                        Location(str(options.admin_tls_certificate), 0, 0),
                        f"cannot load the certificate and key ({options.admin_tls_key}): {err}",
                        "admin_tls_certificate",
                    )
                ]
            ) from None
    return tokens, tls


def _webhook_secrets(options: DaemonSettings) -> list[WebhookSettings]:
    """Each webhook's settings with its secret read; an unreadable or empty file is a
    ConfigError naming secret_file."""
    found = []
    for hook in options.webhooks:
        if hook.secret_file is None:
            found.append(hook)
            continue
        try:
            secret = hook.secret_file.read_bytes().strip()
        except OSError as err:
            secret, why = b"", f"cannot read it: {err}"
        else:
            why = "it is empty"
        if not secret:
            raise ConfigError(
                [
                    Problem(
                        Location(str(hook.secret_file), 0, 0),
                        f'webhook "{hook.name}": {why}',
                        "secret_file",
                    )
                ]
            )
        found.append(dataclasses.replace(hook, secret=secret))
    return found


def worker_socket_path(spoolbase: Path) -> str:
    path = os.path.join(os.path.abspath(spoolbase), "workers.sock")
    if len(path) > 100:  # AF_UNIX paths are short
        path = os.path.join(tempfile.mkdtemp(prefix="relay-"), "workers.sock")
    return path


async def _wait_listening(addresses: list[tuple[str, int]], within: float = 30.0) -> None:
    """Until something accepts connections on every address (the workers are up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for host, port in addresses:
        while True:
            try:
                _, writer = await asyncio.open_connection(host if host else "127.0.0.1", port)
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            writer.close()
            break


async def _main(config: Config, path: str) -> int:
    daemon = Daemon(config, path)
    await daemon.start()
    heap.settle()
    listening = (
        [b.listen for b in daemon.listeners.bound]
        if daemon.listeners is not None
        else [lst.listen for lst in daemon.settings.inject.listeners]
    )
    for address in listening:
        print(f"relay: listening on {address}", flush=True)
    if daemon.workers:
        print(f"relay: {len(daemon.workers)} injection worker processes", flush=True)
    if daemon.admin is not None:
        print(f"relay: admin API on {daemon.settings.daemon.admin_listen}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    reloads: set[asyncio.Task[None]] = set()

    def reload() -> None:
        try:
            new = load(path)
            compile_settings(new)  # key files too: a bad one keeps the running configuration
        except ConfigError as err:
            log.error("reload refused, keeping the running configuration:\n%s", err)
            return
        task = loop.create_task(daemon.reload(new))
        task.add_done_callback(lambda _: heap.resettle())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGUSR1, daemon.events.rotate)
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
    for warning in config.warnings:
        log.warning("%s", warning)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_main(config, path))
