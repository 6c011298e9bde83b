"""The spool: the one object injection and the scheduler talk to.

    spool = await Spool.open(directory)
    envelope = await spool.store(NewMessage(...))    # durable when it returns
    content = await spool.load(envelope.message_id)
    removed = await spool.update_recipients(envelope.message_id, [recipient, ...])
    await spool.remove(envelope.message_id)
    for envelope in spool.scan(): ...                # what survived the last run
    await spool.close()

All records go through one group committer; its disk work (synchronous writes, rotation,
compaction) runs on a dedicated thread, and bodies not held in RAM are read back on a small
reader pool, so the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from relay.spool.cache import BodyCache
from relay.spool.commit import GroupCommitter
from relay.spool.disk_thread import DiskThread
from relay.spool.errors import (
    CorruptMessage,
    MessageNotFound,
    SpoolError,
    SpoolFullError,
    from_os_error,
)
from relay.spool.fileops import FileOps
from relay.spool.format import (
    FormatError,
    RecordKind,
    encode_message,
    encode_regroup,
    encode_remove,
    encode_update,
    message_content,
    parse_record,
    reencode_message,
)
from relay.spool.index import Location, SpoolIndex, copy_envelope
from relay.spool.model import Envelope, NewMessage, Recipient
from relay.spool.recovery import RecoveryReport, recover
from relay.spool.segments import SegmentLog
from relay.spool.space import SpaceAllowance
from relay.spool.statistics import SpoolStatistics

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
SPACE_KEPT = 64 * 1024 * 1024  # free space new mail never takes (delivery records need it)
COMPACT_PER_BATCH = 64  # messages copied forward per commit batch, at most
_ENCODE_OFF_LOOP = 256 * 1024  # bodies this large are checksummed on a thread
_FULL = "spooling: spool disk full (the rest is kept for delivery records)"
LOCK_FILE = "lock"

Clock = Callable[[], float]


@dataclass(slots=True)
class _Copy:
    message_id: str
    old: Location
    envelope: Envelope


@dataclass(slots=True)
class _Written:
    locations: list[Location]
    copies: list[Location]
    deleted: list[int]
    sizes: dict[int, int]


class Spool:
    """A durable message spool in one directory, owned by one process."""

    def __init__(
        self,
        directory: str,
        *,
        log_: SegmentLog,
        index: SpoolIndex,
        report: RecoveryReport,
        disk: DiskThread,
        readers: ThreadPoolExecutor,
        lock_fd: int,
        max_resident_messages: int,
        segment_bytes: int,
        clock: Clock,
    ) -> None:
        self.directory = directory
        self._log = log_
        self._index = index
        self._report = report
        self._disk = disk
        self._readers = readers
        self._lock_fd = lock_fd
        self._cache = BodyCache(max_resident_messages)
        self._segment_bytes = segment_bytes
        self._clock = clock
        self._committer = GroupCommitter(self._flush)
        self._recovered = len(index.messages)
        self._closed = False
        self._stored = 0
        self._removed = 0
        self._updates = 0
        self._compacted = 0
        self._disk_full = False  # a commit failed for want of space, not reclaimed since
        self._space = SpaceAllowance()  # what the last statvfs allows without asking again
        self._segments_deleted = 0
        self._id_counter = secrets.randbelow(1 << 16)
        # Ids need to be unique, not secret: a seeded generator, not a syscall per message.
        self._random = random.Random(secrets.randbits(64)).getrandbits

    # --- life cycle ---------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        fsync: bool = True,
        max_resident_messages: int = 32768,
        clock: Clock = time.time,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        file_ops: FileOps | None = None,
    ) -> Spool:
        """Open (creating if needed) the spool in `directory` and recover what it holds."""
        path = os.fspath(directory)
        ops = file_ops or FileOps()
        disk = DiskThread("spool-commit")
        readers = ThreadPoolExecutor(2, thread_name_prefix="spool-read")
        lock_fd = -1
        try:
            lock_fd = await disk.run(_lock, path)
            recovered = await disk.run(functools.partial(recover, path, ops, fsync=fsync))
        except OSError as exc:
            _release(lock_fd)
            disk.stop()
            readers.shutdown()
            raise from_os_error(exc, f"opening spool {path}") from exc
        except BaseException:
            _release(lock_fd)
            disk.stop()
            readers.shutdown()
            raise
        segment_log = SegmentLog(
            path,
            ops=ops,
            fsync=fsync,
            segment_bytes=segment_bytes,
            sizes=recovered.sizes,
            next_number=recovered.next_segment,
        )
        report = recovered.report
        log.info(
            "spool %s: %d messages recovered from %d segments (%d quarantined, %d partial "
            "appends and %d temporary files discarded)",
            path,
            len(recovered.index.messages),
            report.segments,
            len(report.quarantined),
            len(report.torn_tails),
            len(report.temp_removed),
        )
        return cls(
            path,
            log_=segment_log,
            index=recovered.index,
            report=report,
            disk=disk,
            readers=readers,
            lock_fd=lock_fd,
            max_resident_messages=max_resident_messages,
            segment_bytes=segment_bytes,
            clock=clock,
        )

    async def close(self) -> None:
        """Finish pending writes and release the directory."""
        if self._closed:
            return
        self._closed = True
        await self._committer.close()
        await self._disk.run(self._log.close)
        _release(self._lock_fd)
        self._disk.stop()
        self._readers.shutdown(wait=False)

    async def __aenter__(self) -> Spool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the interface ------------------------------------------------------------------

    async def store(self, message: NewMessage) -> Envelope:
        """Make a new message durable; returns its envelope once it is fsynced.

        Raises SpoolFullError when the disk is full, SpoolWriteError on other I/O failures;
        nothing of the message is left behind then.
        """
        return await self.submit(message)

    def submit(self, message: NewMessage) -> asyncio.Future[Envelope]:
        """`store` without a coroutine (injection's path): the future of the envelope."""
        self._check_open()
        envelope = self._new_envelope(message)
        content = message.content
        if self._short_of_space(len(content)):
            return self._refused()
        if len(content) >= _ENCODE_OFF_LOOP:
            return asyncio.ensure_future(self._store_large(envelope, content))
        return self._committer.submit_nowait(
            encode_message(envelope, content), self._placer(envelope, content)
        )

    async def store_reporting(
        self, messages: Sequence[NewMessage], about: str, updates: Iterable[Recipient]
    ) -> tuple[list[Envelope], bool]:
        """Store new messages (the DSNs of one attempt) and journal the recipient outcomes
        they report on message `about` in one commit: every record goes in one append and
        one fsync, so a crash keeps all or none. Stored one after the other, a kill between
        them left a DSN for recipients that a restart then tried again and delivered (or
        a delay notice that went out again).

        Returns the new messages' envelopes and what `update_recipients` returns."""
        self._check_open()
        if not messages:
            raise ValueError("store_reporting needs a message to store")
        envelopes = [self._new_envelope(message) for message in messages]
        if self._short_of_space(sum(len(message.content) for message in messages)):
            raise SpoolFullError(_FULL)
        records = [
            await self._encoded(envelope, message.content)
            for envelope, message in zip(envelopes, messages, strict=True)
        ]
        rows = list(updates)
        # After the awaits (the index as it is now); none to journal: `about` may be elsewhere.
        journal = self._journal(about, rows) if rows else None
        # No await between the submissions: they join the same commit batch.
        stored = [
            self._committer.submit_nowait(record, self._placer(envelope, message.content))
            for record, envelope, message in zip(records, envelopes, messages, strict=True)
        ]
        if journal is None:
            return list(await asyncio.gather(*stored)), False
        outcome = self._committer.submit_nowait(*journal)
        _, removed = await asyncio.gather(asyncio.gather(*stored), outcome)  # all or none
        return [future.result() for future in stored], removed

    def _new_envelope(self, message: NewMessage) -> Envelope:
        if not message.recipients:
            raise ValueError("a message needs at least one recipient")
        return Envelope(
            message_id=self._new_id(),
            sender=sys.intern(message.sender),  # bulk mail: one sender, many messages
            binding_group=message.binding_group,
            binding=message.binding,
            received_at=message.received_at,
            recipients=[Recipient(address) for address in message.recipients],
            size=len(message.content),
            client=message.client,
            esmtp=message.esmtp,
            tenant=message.tenant,
            campaign=message.campaign,
            priority=message.priority,
        )

    @staticmethod
    def _refused() -> asyncio.Future[Envelope]:
        refused: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        refused.set_exception(SpoolFullError(_FULL))
        return refused

    def _short_of_space(self, size: int) -> bool:
        """Would this message eat into the space kept for the records of deliveries (10% of
        the filesystem, at most SPACE_KEPT)? A disk filled by new mail to the last byte
        could record no outcome: every delivered message would stay queued and go out
        again and again. A statvfs answer stands for a while (space.py)."""
        now = self._clock()
        if self._space.take(size, now):
            return False
        try:
            disk = os.statvfs(self.directory)
        except OSError:
            return False  # the write itself will tell
        kept = min(SPACE_KEPT, disk.f_blocks * disk.f_frsize // 10)
        above_kept = disk.f_bavail * disk.f_frsize - kept
        if above_kept >= size:
            self._space.grant(above_kept, size, now)
            return False
        self._space.revoke()
        self._disk_full = True
        return len(self) > 0  # nothing live: this commit deletes the dead active segment

    async def _store_large(self, envelope: Envelope, content: bytes) -> Envelope:
        record = await self._encoded(envelope, content)
        return await self._committer.submit(record, self._placer(envelope, content))

    async def _encoded(self, envelope: Envelope, content: bytes) -> bytes:
        """The MESSAGE record; a large body is checksummed on a reader thread."""
        if len(content) < _ENCODE_OFF_LOOP:
            return encode_message(envelope, content)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, encode_message, envelope, content)

    def _placer(self, envelope: Envelope, content: bytes) -> Callable[[Location], Envelope]:
        """What a stored message's commit applies: index it, keep its body, hand out a copy."""
        public = copy_envelope(envelope)

        def apply(location: Location) -> Envelope:
            self._index.place(envelope, location)
            self._cache.put(envelope.message_id, content)
            self._stored += 1
            return public

        return apply

    async def load(self, message_id: str) -> bytes:
        """The message's content, from RAM if resident, else from its segment."""
        self._check_open()
        body = self._cache.get(message_id)
        if body is not None:
            return body
        loop = asyncio.get_running_loop()
        for _ in range(4):
            entry = self._index.get(message_id)
            if entry is None:
                raise MessageNotFound(message_id)
            location = entry.location
            try:
                content = await loop.run_in_executor(
                    self._readers, self._read_content, message_id, location
                )
            except FileNotFoundError:  # compaction moved it meanwhile: look again
                await asyncio.sleep(0)
                continue
            if message_id in self._index.messages:
                self._cache.put(message_id, content)
            return content
        raise SpoolError(f"message {message_id} keeps moving; cannot load it")

    async def update_recipients(self, message_id: str, updates: Iterable[Recipient]) -> bool:
        """Journal recipient outcomes (matched by address); durable when it returns.

        Returns True when every recipient is now final and the message left the spool.
        """
        self._check_open()
        journal = self._journal(message_id, updates)
        if journal is None:
            return False
        return await self._committer.submit(*journal)

    def _journal(
        self, message_id: str, updates: Iterable[Recipient]
    ) -> tuple[bytes, Callable[[Location], bool]] | None:
        """The UPDATE record for these outcomes and what its commit applies (None: none)."""
        entry = self._index.get(message_id)
        if entry is None:
            raise MessageNotFound(message_id)
        rows: list[tuple[int, Recipient]] = []
        for update in updates:
            matches = [
                i for i, r in enumerate(entry.envelope.recipients) if r.address == update.address
            ]
            if not matches:
                raise ValueError(f"{update.address!r} is not a recipient of {message_id}")
            rows.extend((i, update.copy()) for i in matches)
        if not rows:
            return None

        def apply(_: Location) -> bool:
            result = self._index.apply_updates(message_id, rows)
            if result is None:
                raise MessageNotFound(message_id)
            self._updates += 1
            if result:
                self._cache.discard(message_id)
                self._removed += 1
            return result

        return encode_update(message_id, rows), apply

    async def regroup(self, message_id: str, group: str) -> bool:
        """Move a queued message to binding group `group` for good (an operator's rebind;
        its explicit binding is dropped); durable when it returns. False if it is gone."""
        self._check_open()
        if self._index.get(message_id) is None:
            return False

        def apply(_: Location) -> bool:
            return self._index.regroup(message_id, group)

        result: bool = await self._committer.submit(encode_regroup(message_id, group), apply)
        return result

    def evict(self, message_id: str) -> None:
        """Free a message body from memory (it stays on disk; `load` reads it back)."""
        self._cache.discard(message_id)

    async def remove(self, message_id: str) -> None:
        """Forget a message, durably, whatever its recipients' states."""
        self._check_open()
        if self._index.get(message_id) is None:
            raise MessageNotFound(message_id)

        def apply(_: Location) -> None:
            if self._index.forget(message_id) is None:
                raise MessageNotFound(message_id)
            self._cache.discard(message_id)
            self._removed += 1

        await self._committer.submit(encode_remove(message_id), apply)

    def scan(self) -> list[Envelope]:
        """Every message in the spool (copies: changing them changes nothing)."""
        return [copy_envelope(e.envelope) for e in self._index.messages.values()]

    def get(self, message_id: str) -> Envelope:
        entry = self._index.get(message_id)
        if entry is None:
            raise MessageNotFound(message_id)
        return copy_envelope(entry.envelope)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._index.messages

    def __len__(self) -> int:
        return len(self._index.messages)

    @property
    def recovery_report(self) -> RecoveryReport:
        return self._report

    def statistics(self) -> SpoolStatistics:
        commits = self._committer.statistics()
        report = self._report
        return SpoolStatistics(
            messages=len(self._index.messages),
            bytes=self._index.content_bytes,
            disk_bytes=sum(u.size for u in self._index.segments.values()),
            segments=len(self._index.segments),
            resident_bodies=len(self._cache),
            resident_bytes=self._cache.bytes,
            stored=self._stored,
            removed=self._removed,
            updates=self._updates,
            commit_batches=commits.batches,
            committed_records=commits.records,
            largest_batch=commits.largest_batch,
            failed_batches=commits.failed_batches,
            fsyncs=self._log.fsyncs,
            compacted=self._compacted,
            segments_deleted=self._segments_deleted,
            recovered=self._recovered,
            quarantined=len(report.quarantined),
            partial_discarded=len(report.torn_tails) + len(report.temp_removed),
        )

    # --- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError("the spool is closed")

    def _new_id(self) -> str:
        self._id_counter = (self._id_counter + 1) & 0xFFFF
        millis = int(self._clock() * 1000) & 0xFFFFFFFFFFF
        while True:
            message_id = f"{millis:011x}{self._id_counter:04x}{self._random(32):08x}"
            if message_id not in self._index.messages:
                return message_id

    def _read_content(self, message_id: str, location: Location) -> bytes:
        try:
            data = self._log.read(location)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise SpoolError(f"reading message {message_id}: {exc}") from exc
        try:
            record = parse_record(data, 0)
            if record.kind is not RecordKind.MESSAGE:
                raise FormatError(f"record at {location} is not a message")
        except FormatError as exc:
            raise CorruptMessage(f"message {message_id} at {location}: {exc}") from exc
        return message_content(record.body)

    async def _flush(self, records: list[bytes]) -> list[Location]:
        """One commit batch: plan compaction, write on the commit thread, adopt the result."""
        copies, deletions = self._plan_maintenance()
        reclaiming = self._log.active in deletions
        # Short of space, the space comes back before this batch is written; else the
        # unlinks run beside the commits (SegmentLog.delete_later).
        at_once = reclaiming or self._disk_full
        try:
            written = await self._disk.run(self._write_batch, records, copies, deletions, at_once)
        except OSError as exc:
            error = from_os_error(exc, "spooling")
            if isinstance(error, SpoolFullError):
                self._disk_full = True
                self._space.revoke()
            raise error from exc
        except FormatError as exc:
            raise CorruptMessage(f"compaction: {exc}") from exc
        if reclaiming:
            self._disk_full = False
        self._index.sync_segments(written.sizes)
        self._segments_deleted += len(written.deleted)
        for copy, location in zip(copies, written.copies, strict=True):
            entry = self._index.get(copy.message_id)
            if entry is not None and entry.location == copy.old:
                self._index.move(copy.message_id, location)
                self._compacted += 1
        return written.locations

    def _write_batch(
        self, records: list[bytes], copies: list[_Copy], deletions: list[int], at_once: bool
    ) -> _Written:
        """Runs on the commit thread."""
        if deletions and at_once:
            self._log.delete(deletions, with_active=True)
        elif deletions:
            self._log.delete_later(deletions)
        copied: list[bytes] = []
        for copy in copies:
            data = self._log.read(copy.old)
            old = parse_record(data, 0)
            copied.append(reencode_message(copy.envelope, old.body))
        locations = self._log.append(copied + records)
        return _Written(
            locations=locations[len(copied) :],
            copies=locations[: len(copied)],
            deleted=deletions,
            sizes=dict(self._log.sizes),
        )

    def _plan_maintenance(self) -> tuple[list[_Copy], list[int]]:
        """Decide, from the index as it is now, what to delete and what to copy forward.

        Segments are deleted oldest first only, and only once nothing in them is live: a
        REMOVE or UPDATE record must never disappear while an older record it overrides is
        still on disk. Live messages in the oldest segment are copied forward (with their
        current state) once closed segments hold more garbage than live data.
        """
        active = self._log.active
        closed = [(n, u) for n, u in self._index.segments.items() if n != active]
        deletions: list[int] = []
        while closed and not closed[0][1].live:
            deletions.append(closed.pop(0)[0])
        if not closed:
            # A full disk and nothing live left anywhere: the active segment goes too (its
            # records override nothing that remains), else its dead bytes would keep the
            # disk full for as long as it stays below segment_bytes (64 MB by default).
            usage = self._index.segments.get(active) if active is not None else None
            if self._disk_full and active is not None and (usage is None or not usage.live):
                deletions.append(active)
            return [], deletions
        total = sum(u.size for _, u in closed)
        live = sum(u.live_bytes for _, u in closed)
        if total - live <= max(2 * self._segment_bytes, live):
            return [], deletions
        oldest = closed[0][1]
        copies = []
        for message_id in list(oldest.live)[:COMPACT_PER_BATCH]:
            entry = self._index.messages[message_id]
            copies.append(_Copy(message_id, entry.location, copy_envelope(entry.envelope)))
        return copies, deletions


def _lock(directory: str) -> int:
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolError(f"spool {directory} is in use by another process") from None
    return fd


def _release(fd: int) -> None:
    if fd >= 0:
        os.close(fd)
