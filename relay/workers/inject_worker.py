"""An injection worker process: SMTP listeners (shared with the other workers through
SO_REUSEPORT), its own spool shard, and a link to the scheduler process.

    python -m relay.workers.inject_worker CONFIG INDEX SOCKET

The worker answers the scheduler's requests on its shard (scan, load, update, evict): it
stays the shard's only writer. If the scheduler process is away, mail is still accepted and
spooled; the scheduler learns of it from the scan when the link is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
import time
from dataclasses import asdict
from typing import Any

from relay import heap
from relay.config import ConfigError, load
from relay.dispose.feedback import Complaint
from relay.handoff import Handoff
from relay.inject.auth import CredentialsError
from relay.inject.server import start_listeners
from relay.inject.shared_counts import open_table, tables
from relay.spool.errors import MessageNotFound, SpoolError
from relay.spool.model import Envelope, NewMessage
from relay.spool.store import Spool
from relay.suppress.service import SuppressionList, action_of
from relay.wiring import compile_settings
from relay.workers.wire import (
    FrameReader,
    encode_frame,
    envelope_tuple,
    recipient_from,
)

log = logging.getLogger("relay.workers")
RECONNECT_DELAY = 0.5
WORKER_RESIDENT_MESSAGES = 1024


class SchedulerLink:
    """The worker's end: notifications out, the shard's requests served."""

    def __init__(self, spool: Spool, shard: str, path: str) -> None:
        self.spool = spool
        self.shard = shard
        self.path = path
        self.writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox: list[bytes] = []

    def notify(self, kind: str, payload: Any) -> None:
        self.send(encode_frame(kind, 0, payload))

    def send(self, frame: bytes) -> None:
        """Queue a frame; everything queued in one loop iteration goes out in one write
        (a group commit finishes many messages at once: one wake-up for the scheduler)."""
        if self.writer is None or self.writer.is_closing():
            return
        self._outbox.append(frame)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        if frames and self.writer is not None and not self.writer.is_closing():
            self.writer.write(b"".join(frames))

    async def run(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path)
            except OSError:
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            self._outbox = []
            writer.write(encode_frame("hello", 0, self.shard))
            self.writer = writer
            frames = FrameReader(reader)
            try:
                while True:
                    kind, request_id, payload = await frames.next()
                    task = asyncio.create_task(self._serve(kind, request_id, payload))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                log.warning("worker %s: scheduler link lost; reconnecting", self.shard)
            finally:
                self.writer = None
                writer.close()
            await asyncio.sleep(RECONNECT_DELAY)

    async def _serve(self, kind: str, request_id: int, payload: Any) -> None:
        try:
            if kind == "scan":
                result: Any = [envelope_tuple(e) for e in self.spool.scan()]
            elif kind == "load":
                result = await self.spool.load(payload)
            elif kind == "update":
                message_id, updates = payload
                result = await self.spool.update_recipients(
                    message_id, [recipient_from(u) for u in updates]
                )
            elif kind == "report":  # DSNs and the outcomes they report: one commit
                messages, about, updates = payload
                envelopes, removed = await self.spool.store_reporting(
                    messages, about, [recipient_from(u) for u in updates]
                )
                result = ([envelope_tuple(e) for e in envelopes], removed)
            elif kind == "get":
                try:
                    result = envelope_tuple(self.spool.get(payload))
                except MessageNotFound:
                    result = None
            elif kind == "regroup":
                result = await self.spool.regroup(*payload)
            elif kind == "statistics":
                result = asdict(self.spool.statistics())
            elif kind == "evict":
                self.spool.evict(payload)
                return
            else:
                raise SpoolError(f"unknown request {kind!r}")
        except (SpoolError, ValueError) as err:
            self.send(encode_frame("error", request_id, (type(err).__name__, str(err))))
            return
        self.send(encode_frame("ok", request_id, result))


async def run_worker(config_path: str, index: int, socket_path: str) -> int:
    # A reload signal during start-up is moot (the file is read just below); later ones
    # are handled once the listeners run.
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: None)
    settings = compile_settings(load(config_path))
    options = settings.daemon
    shard = f"shard-{index}"
    directory = options.spoolbase / shard
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    spool = await Spool.open(
        directory,
        fsync=options.force_fsync,
        # The scheduler process keeps the bodies it needs (they ride along with each
        # announcement); the worker's own cache only serves reloads after evictions.
        max_resident_messages=WORKER_RESIDENT_MESSAGES,
    )
    link = SchedulerLink(spool, shard, socket_path)
    link_task = asyncio.create_task(link.run())

    def announce(envelope: Envelope, message: NewMessage) -> None:
        # The content rides along, so the scheduler need not ask for it.
        link.notify("new", (envelope_tuple(envelope), message.content))

    def complain(complaint: Complaint | None, message: NewMessage) -> None:
        if complaint is None:
            log.warning(
                "worker %s: FBL mail from %s is not an attributable ARF report",
                shard,
                message.sender or "<>",
            )
            return
        link.notify(
            "complaint",
            (
                complaint.binding,
                complaint.domain,
                complaint.feedback_type,
                complaint.message_id,
                complaint.recipient,
                complaint.tenant,
            ),
        )

    suppression: SuppressionList | None = None
    follow: asyncio.Task[None] | None = None
    if options.suppression_enabled:  # the daemon's list, followed (it opened the file first)
        suppression = SuppressionList(
            options.spoolbase, action=action_of(options.suppression_action), clock=time.time
        )
        await suppression.open(writer=False)
        suppression.memory.on_drop = lambda fields: link.notify("event", ("suppressed", fields))
        follow = asyncio.create_task(suppression.follow())
    # max_connections and max_connections_per_ip count over every worker (this worker's
    # rows of the shared table, zeroed now); each client address is steered to one worker.
    workers = max(options.injection_workers, index)
    shared = tables(open_table(options.spoolbase, workers), workers, index - 1)
    listeners = await start_listeners(
        settings.inject,
        Handoff(
            spool.submit,
            announce,
            complain,
            options.fbl_address,
            note=lambda kind, fields: link.notify("event", (kind, fields)),
        ),
        reuse_port=True,
        suppression=None if suppression is None else suppression.memory,
        steer=workers,
        shared=shared,
    )
    heap.settle()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        """The scheduler process sends SIGHUP after a reload: read the file again and give
        new sessions the new injection settings (a bad file or certificate: keep the old)."""
        try:
            new = compile_settings(await asyncio.to_thread(load, config_path))
            await listeners.reconfigure(new.inject)
            if suppression is not None:
                suppression.memory.action = action_of(new.daemon.suppression_action)
            heap.resettle()
        except (ConfigError, OSError, ssl.SSLError, CredentialsError) as err:
            log.error("worker %s: injection settings not reloaded: %s", shard, err)

    def on_hangup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    await stop.wait()
    await listeners.close(grace=options.shutdown_timeout)
    link_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await link_task
    await spool.close()
    if suppression is not None and follow is not None:
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow
        await suppression.close()
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s worker-{argv[1]} %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_worker(argv[0], int(argv[1]), argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
