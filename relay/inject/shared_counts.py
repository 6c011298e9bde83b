"""Open connections per listener and per client address summed over injection worker
processes, without a lock.

A shared file holds one block per worker: a row of listener counts and a row of client
address counts, each row an open-addressing hash of (key, count) slots. A worker writes
only its own block (single writer); a total is the sum of the key's count in every row.
The layout does not depend on the number of workers, and the file only ever grows (a
mapping never loses its pages). To
admit a connection a worker first adds it to its own count, then reads the total: over the
limit, it takes it back and refuses. So the total never goes over; two workers admitting
for the same key at the same moment may both refuse one that could have been admitted
(the steering program makes that rare for an address: its connections go to one worker).
A worker zeroes its rows when it starts; the daemon zeroes a dead worker's rows.

    listeners, addresses = tables(mapped, workers=2, worker=0)
    if listeners.claim("127.0.0.1:25", limit=40): ...  # counted
    listeners.release("127.0.0.1:25")

A slot whose count falls to 0 keeps its key (a reader may be walking past it) and is
reused; it is emptied when the slot after it is empty (no probe sequence goes past it).
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import threading
from pathlib import Path

LISTENER_SLOTS = 256  # listeners per worker row (powers of two)
ADDRESS_SLOTS = 16384  # client addresses with open connections per worker
SLOT_BYTES = 16  # (key, count) as two 64-bit words
FILE_NAME = "inject-connections"
Buffer = memoryview | bytearray | mmap.mmap


class CountTableFull(RuntimeError):
    """More distinct keys with open connections than a row has slots."""


@functools.lru_cache(maxsize=4096)
def _key(name: str) -> int:
    """A non-zero 64-bit key (0 marks an empty slot)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") | 1


BLOCK_BYTES = (LISTENER_SLOTS + ADDRESS_SLOTS) * SLOT_BYTES  # one worker's rows


def table_size(workers: int) -> int:
    """Bytes of the file for `workers` workers."""
    return workers * BLOCK_BYTES


_FENCE = threading.Lock()


def _fence() -> None:
    """A full memory barrier (an uncontended lock is an atomic read-modify-write): our
    count is visible to the other workers before we read theirs."""
    with _FENCE:
        pass


class CountTable:
    """Worker `worker`'s (0-based) view of `workers` rows of `slots` slots, the first at
    `offset` bytes into `buffer`, each `stride` bytes after the previous one (default:
    adjacent). Zeroes the worker's row."""

    def __init__(
        self,
        buffer: Buffer,
        workers: int,
        worker: int,
        *,
        slots: int,
        offset: int = 0,
        stride: int | None = None,
    ) -> None:
        if not 0 <= worker < workers:
            raise ValueError(f"worker {worker} outside 0..{workers - 1}")
        if slots <= 0 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two, not {slots}")
        stride = slots * SLOT_BYTES if stride is None else stride
        if stride % 8 or stride < slots * SLOT_BYTES:
            raise ValueError(f"rows of {slots} slots cannot be {stride} bytes apart")
        size = (workers - 1) * stride + slots * SLOT_BYTES
        view = memoryview(buffer)
        if view.nbytes < offset + size:
            raise ValueError(f"table of {view.nbytes} bytes; {workers} workers need more")
        self._words = view.cast("B")[offset : offset + size].cast("Q")
        self._workers = workers
        self._slots = slots
        self._stride = stride // 8  # in words
        self._row = worker * self._stride
        self._mine: dict[str, int] = {}  # key name -> its count word in my row (count > 0)
        self._words[self._row : self._row + slots * 2] = memoryview(bytes(slots * SLOT_BYTES)).cast(
            "Q"
        )

    def _slot(self, row: int, key: int, step: int) -> int:
        return row + ((key + step) & (self._slots - 1)) * 2

    def _find(self, row: int, key: int) -> int | None:
        """The count word of `key` in the row starting at word `row`, None if absent."""
        words = self._words
        for step in range(self._slots):
            slot = self._slot(row, key, step)
            found = words[slot]
            if found == key:
                return slot + 1
            if found == 0:
                return None
        return None

    def _own(self, name: str) -> int:
        """The count word of `name` in my row, placed if absent (CountTableFull)."""
        index = self._mine.get(name)
        if index is not None:
            return index
        words = self._words
        key = _key(name)
        free: int | None = None  # the first slot whose count is 0
        for step in range(self._slots):
            slot = self._slot(self._row, key, step)
            found = words[slot]
            if found == key:
                index = slot + 1
                break
            if found == 0 or (free is None and words[slot + 1] == 0):
                if free is None:
                    free = slot
                if found == 0:
                    break
        if index is None:
            if free is None:
                raise CountTableFull(f"more than {self._slots} keys in the connection table")
            words[free + 1] = 0
            words[free] = key
            index = free + 1
        self._mine[name] = index
        return index

    def total(self, name: str) -> int:
        """Open connections of `name` over every worker."""
        key = _key(name)
        total = 0
        for worker in range(self._workers):
            row = worker * self._stride
            index = self._mine.get(name) if row == self._row else self._find(row, key)
            if index is not None:
                total += self._words[index]
        return total

    def claim(self, name: str, limit: int | None) -> bool:
        """Count one more connection unless that puts the total over `limit` (None: no
        limit); True if counted."""
        index = self._own(name)
        self._words[index] += 1
        if limit is None:
            return True
        _fence()
        if self.total(name) <= limit:
            return True
        self._drop(name, index)
        return False

    def release(self, name: str) -> None:
        index = self._mine.get(name)
        if index is not None:
            self._drop(name, index)

    def _drop(self, name: str, index: int) -> None:
        words = self._words
        words[index] -= 1
        if words[index]:
            return
        del self._mine[name]
        # Empty the trailing slots of count 0, from this one back.
        mask = self._slots - 1
        position = (index - 1 - self._row) // 2
        for _ in range(self._slots):
            slot = self._row + position * 2
            after = self._row + ((position + 1) & mask) * 2
            if words[slot] == 0 or words[slot + 1] != 0 or words[after] != 0:
                return
            words[slot] = 0
            position = (position - 1) & mask


def tables(buffer: Buffer, workers: int, worker: int) -> tuple[CountTable, CountTable]:
    """Worker `worker`'s (listeners, client addresses) tables in the shared file."""
    listeners = CountTable(buffer, workers, worker, slots=LISTENER_SLOTS, stride=BLOCK_BYTES)
    addresses = CountTable(
        buffer,
        workers,
        worker,
        slots=ADDRESS_SLOTS,
        offset=LISTENER_SLOTS * SLOT_BYTES,
        stride=BLOCK_BYTES,
    )
    return listeners, addresses


def open_table(directory: Path, workers: int) -> mmap.mmap:
    """The shared file in `directory` (created, or grown, zeroed), its first `workers`
    blocks mapped. Never shrunk: another worker may map more of it."""
    path = directory / FILE_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < table_size(workers):
            os.ftruncate(fd, table_size(workers))
        return mmap.mmap(fd, table_size(workers))
    finally:
        os.close(fd)


def zero_worker(directory: Path, workers: int, worker: int) -> None:
    """Zero a (dead) worker's block, from another process (the daemon)."""
    mapped = open_table(directory, max(workers, worker + 1))
    try:
        start = worker * BLOCK_BYTES
        mapped[start : start + BLOCK_BYTES] = bytes(BLOCK_BYTES)
    finally:
        mapped.close()
