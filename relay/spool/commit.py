"""Group commit: every record submitted while a batch is being written joins the next batch.

There is no timer. A lone record is written at once; records that arrive while the commit
thread is busy with a write and its fsync wait for it and then share one write and one fsync.
Once a batch is durable the committer runs each record's `apply` callback on the event loop,
in log order, before the next batch is planned, so memory never runs ahead of the disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from relay.spool.errors import SpoolError
from relay.spool.index import Location

T = TypeVar("T")

Flush = Callable[[list[bytes]], Awaitable[list[Location]]]


@dataclass(slots=True)
class _Commit:
    record: bytes
    apply: Callable[[Location], Any]
    future: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class CommitStatistics:
    batches: int
    records: int
    largest_batch: int
    failed_batches: int


class GroupCommitter:
    def __init__(self, flush: Flush) -> None:
        self._flush = flush
        self._pending: list[_Commit] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._batches = 0
        self._records = 0
        self._largest = 0
        self._failed = 0
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="spool-commit")

    async def submit(self, record: bytes, apply: Callable[[Location], T]) -> T:
        """Make `record` durable, then return `apply(location)` (run in log order)."""
        return await self.submit_nowait(record, apply)

    def submit_nowait(self, record: bytes, apply: Callable[[Location], T]) -> asyncio.Future[T]:
        """`submit` without a coroutine: the future of `apply(location)`."""
        if self._closing:
            raise SpoolError("the spool is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append(_Commit(record, apply, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            batch, self._pending = self._pending, []
            await self._commit(batch)
            if self._pending or self._closing:
                self._wakeup.set()

    async def _commit(self, batch: list[_Commit]) -> None:
        try:
            locations = await self._flush([c.record for c in batch])
        except BaseException as exc:  # every waiter learns why; the committer keeps going
            self._failed += 1
            for commit in batch:
                if not commit.future.done():
                    commit.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._batches += 1
        self._records += len(batch)
        self._largest = max(self._largest, len(batch))
        for commit, location in zip(batch, locations, strict=True):
            try:
                result = commit.apply(location)
            except Exception as exc:
                if not commit.future.done():
                    commit.future.set_exception(exc)
            else:
                if not commit.future.done():
                    commit.future.set_result(result)

    def statistics(self) -> CommitStatistics:
        return CommitStatistics(self._batches, self._records, self._largest, self._failed)

    async def close(self) -> None:
        """Finish what was submitted, then stop."""
        self._closing = True
        self._wakeup.set()
        await asyncio.shield(self._task)
