"""The scheduler process's view of every spool: its own (DSNs, alerts, mail it injected
itself) and one shard per injection worker, reached over the worker's socket.

Each message id maps to its owner. A worker announces what it stored ("new") and, on every
(re)connection, everything its shard holds ("scan"), so nothing is lost when either side
restarts; ids already known are not queued twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from relay.spool.cache import BodyCache
from relay.spool.errors import MessageNotFound, SpoolError
from relay.spool.model import Envelope, NewMessage, Recipient
from relay.spool.statistics import SpoolStatistics
from relay.spool.store import Spool
from relay.workers.wire import (
    FrameReader,
    encode_frame,
    envelope_from,
    recipient_tuple,
)

log = logging.getLogger("relay.workers")
OnNew = Callable[..., None]  # (envelope, *, new: bool)
# (binding, domain, feedback type, message id, recipient or None, tenant or None)
OnComplaint = Callable[[str, str, str, str, str | None, str | None], None]
ERRORS: dict[str, type[SpoolError]] = {"MessageNotFound": MessageNotFound}


class WorkerLink:
    """One injection worker's connection: requests out, replies and notifications in."""

    def __init__(self, shard: str, writer: asyncio.StreamWriter) -> None:
        self.shard = shard
        self.writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._outbox: list[bytes] = []
        self.closed = False

    async def call(self, kind: str, payload: Any) -> Any:
        if self.closed:
            raise SpoolError(f"injection worker {self.shard} is not connected")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.send(encode_frame(kind, request_id, payload))
        return await future

    def send(self, frame: bytes) -> None:
        """Frames queued in one loop iteration leave in one write."""
        if self.closed:
            return
        self._outbox.append(frame)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        if frames and not self.closed:
            self.writer.write(b"".join(frames))

    def reply(self, kind: str, request_id: int, payload: Any) -> None:
        future = self._pending.pop(request_id, None)
        if future is None or future.done():
            return
        if kind == "ok":
            future.set_result(payload)
        else:
            name, text = payload
            future.set_exception(ERRORS.get(name, SpoolError)(text))

    def close(self) -> None:
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(SpoolError(f"injection worker {self.shard} went away"))
        self._pending.clear()
        self.writer.close()


class ShardedSpool:
    def __init__(
        self,
        local: Spool,
        on_new: OnNew,
        on_complaint: OnComplaint,
        max_resident_messages: int = 32768,
        on_event: Callable[[str, dict[str, object]], None] | None = None,
    ) -> None:
        self.local = local
        self.on_event = on_event  # event-log records a worker sends (e.g. dkim_unsigned)
        # Workers send each new message's content with its announcement: the common path
        # needs no load request. Bounded like the spool's own body cache.
        self.bodies = BodyCache(max_resident_messages)
        self.on_new = on_new
        self.on_complaint = on_complaint
        self.owners: dict[str, str] = {}  # message id -> worker shard (absent: local)
        self.links: dict[str, WorkerLink] = {}  # shard -> its connection, while connected
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()  # set at each worker's hello

    # --- the SpoolAccess the scheduler and the bouncer use ----------------------------
    async def store(self, message: NewMessage) -> Envelope:
        return await self.local.store(message)

    def submit(self, message: NewMessage) -> asyncio.Future[Envelope]:
        return self.local.submit(message)

    async def store_reporting(
        self, messages: Sequence[NewMessage], about: str, updates: Sequence[Recipient]
    ) -> tuple[list[Envelope], bool]:
        """One commit where `about` is: the daemon's own spool (`Spool.store_reporting`), or
        the worker's shard that holds it, which then holds the DSNs too."""
        shard = self.owners.get(about)
        if shard is None:
            return await self.local.store_reporting(messages, about, updates)
        records, removed = await self._link(shard).call(
            "report", (list(messages), about, [recipient_tuple(u) for u in updates])
        )
        envelopes = [envelope_from(record) for record in records]
        for envelope, message in zip(envelopes, messages, strict=True):
            self.owners[envelope.message_id] = shard  # the caller queues it
            self.bodies.put(envelope.message_id, message.content)
        return envelopes, self._left(about, bool(removed))

    def _link(self, shard: str) -> WorkerLink:
        link = self.links.get(shard)
        if link is None or link.closed:
            raise SpoolError(f"injection worker {shard} is not connected")
        return link

    async def load(self, message_id: str) -> bytes:
        shard = self.owners.get(message_id)
        if shard is None:
            return await self.local.load(message_id)
        cached = self.bodies.get(message_id)
        if cached is not None:
            return cached
        content: bytes = await self._link(shard).call("load", message_id)
        self.bodies.put(message_id, content)
        return content

    async def update_recipients(self, message_id: str, updates: Sequence[Recipient]) -> bool:
        shard = self.owners.get(message_id)
        if shard is None:
            return await self.local.update_recipients(message_id, updates)
        removed: bool = await self._link(shard).call(
            "update", (message_id, [recipient_tuple(u) for u in updates])
        )
        return self._left(message_id, removed)

    def _left(self, message_id: str, removed: bool) -> bool:
        """A worker's message whose last recipient went final left its shard: forget it."""
        if removed:
            self.owners.pop(message_id, None)
            self.bodies.discard(message_id)
        return removed

    async def get(self, message_id: str) -> Envelope | None:
        """A spooled message's envelope as its shard has it, None if no shard holds it."""
        shard = self.owners.get(message_id)
        if shard is None:
            try:
                return self.local.get(message_id)
            except MessageNotFound:
                return None
        found = await self._link(shard).call("get", message_id)
        return None if found is None else envelope_from(found)

    async def regroup(self, message_id: str, group: str) -> bool:
        shard = self.owners.get(message_id)
        if shard is None:
            return await self.local.regroup(message_id, group)
        moved: bool = await self._link(shard).call("regroup", (message_id, group))
        return moved

    def evict(self, message_id: str) -> None:
        shard = self.owners.get(message_id)
        if shard is None:
            self.local.evict(message_id)
            return
        self.bodies.discard(message_id)
        link = self.links.get(shard)
        if link is not None:
            link.send(encode_frame("evict", 0, message_id))

    async def shard_statistics(self, within: float = 2.0) -> dict[str, SpoolStatistics]:
        """Each connected worker's shard, as its worker reports it; a worker that does not
        answer within `within` seconds is left out (and logged)."""
        out: dict[str, SpoolStatistics] = {}
        for shard, link in sorted(self.links.items()):
            try:
                async with asyncio.timeout(within):
                    numbers = await link.call("statistics", None)
                out[shard] = SpoolStatistics(**numbers)
            except (SpoolError, TimeoutError, TypeError) as err:
                log.warning("injection worker %s: no spool statistics: %r", shard, err)
        return out

    def __len__(self) -> int:
        return len(self.local) + len(self.owners)

    # --- the workers' side ----------------------------------------------------------------
    async def wait_connected(self, count: int, within: float) -> bool:
        """Until `count` workers are connected (True), or `within` seconds passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.links) < count:
            self._connected.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._connected.wait(), left)
            except TimeoutError:
                return len(self.links) >= count
        return True

    async def serve(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._server = await asyncio.start_unix_server(self._connection, path)
        os.chmod(path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links.values()):
            link.close()
        for task in list(self._tasks):
            task.cancel()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        link: WorkerLink | None = None
        try:
            frames = FrameReader(reader)
            kind, _, shard = await frames.next()
            if kind != "hello":
                raise ConnectionError(f"expected hello, got {kind}")
            link = WorkerLink(str(shard), writer)
            old = self.links.get(link.shard)
            if old is not None:
                self._forget(old)
            self.links[link.shard] = link
            self._connected.set()
            log.info("injection worker %s connected", link.shard)
            known_before = {m for m, owner in self.owners.items() if owner == link.shard}
            scan = asyncio.ensure_future(link.call("scan", None))
            scan.add_done_callback(functools.partial(self._scanned, link, known_before))
            while True:
                kind, request_id, payload = await frames.next()
                if kind in ("ok", "error"):
                    link.reply(kind, request_id, payload)
                elif kind == "new":
                    record, content = payload
                    envelope = envelope_from(record)
                    if envelope.message_id not in self.owners:
                        self.bodies.put(envelope.message_id, content)
                    self._announce(link, envelope, new=True)
                elif kind == "complaint":
                    self.on_complaint(*payload)
                elif kind == "event" and self.on_event is not None:
                    self.on_event(*payload)  # (kind, fields) for the event log
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as err:
            if link is not None:
                log.warning("injection worker %s disconnected: %s", link.shard, err or "EOF")
        finally:
            if link is not None:
                self._forget(link)
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def _scanned(self, link: WorkerLink, known_before: set[str], done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        present = set()
        for record in done.result():
            envelope = envelope_from(record)
            present.add(envelope.message_id)
            self._announce(link, envelope, new=False)
        for message_id in known_before - present:  # gone from the shard (quarantined)
            if self.owners.get(message_id) == link.shard:
                del self.owners[message_id]

    def _announce(self, link: WorkerLink, envelope: Envelope, *, new: bool) -> None:
        """Queue a message the first time its id is seen; a reconnecting worker's scan
        repeats what the scheduler already holds, and that is not queued twice."""
        if envelope.message_id in self.owners or link.closed:
            return
        self.owners[envelope.message_id] = link.shard
        self.on_new(envelope, new=new)

    def _forget(self, link: WorkerLink) -> None:
        """The worker went away: its requests fail (the scheduler retries them later) and
        its messages stay known until its next scan says what the shard holds."""
        link.close()
        if self.links.get(link.shard) is link:
            del self.links[link.shard]
