"""`Idempotency-Key`: the first answer to a request, kept 24 hours across restarts, so a
client retrying after a timeout queues nothing twice.

Stored with the stdlib's sqlite3 in the spool directory (WAL, synchronous=FULL: an answer
is recorded durably before it is sent), always off the event loop (one worker thread, one
connection). Keys are per token name: two clients cannot see each other's answers. A key
reused with a different request body is refused (422). Requests with the same key that
arrive while the first is still running wait for its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

KEEP = 24 * 3600.0
MAX_KEY = 200
FILE = "idempotency.sqlite3"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # JSON-able


class KeyReused(Exception):
    """The key was used before with a different request."""


class IdempotencyStore:
    def __init__(self, path: Path, clock: Callable[[], float], keep: float = KEEP) -> None:
        self.path = path
        self._clock = clock
        self._keep = keep
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="relay-idempotency")
        self._running: dict[str, asyncio.Future[tuple[str, Answer]]] = {}

    async def _call(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def open(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, fingerprint TEXT NOT "
            "NULL, status INTEGER NOT NULL, body TEXT NOT NULL, at REAL NOT NULL)"
        )
        db.execute("DELETE FROM answers WHERE at < ?", (self._clock() - self._keep,))
        self._db = db

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._call(close)
        self._thread.shutdown(wait=True)

    def _get(self, key: str) -> tuple[str, Answer] | None:
        assert self._db is not None
        row = self._db.execute(
            "SELECT fingerprint, status, body FROM answers WHERE key = ? AND at >= ?",
            (key, self._clock() - self._keep),
        ).fetchone()
        if row is None:
            return None
        return str(row[0]), Answer(int(row[1]), json.loads(row[2]))

    def _put(self, key: str, fingerprint: str, answer: Answer) -> None:
        assert self._db is not None
        now = self._clock()
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
            (key, fingerprint, answer.status, json.dumps(answer.body), now),
        )
        self._db.execute("DELETE FROM answers WHERE at < ?", (now - self._keep,))

    async def once(self, key: str, request: bytes, work: Callable[[], Awaitable[Answer]]) -> Answer:
        """`work()`'s answer, run at most once per key (within the keep time). Only answers
        below 500 are kept: a server-side failure may be retried with the same key."""
        fingerprint = hashlib.sha256(request).hexdigest()
        while (running := self._running.get(key)) is not None:
            await asyncio.wait([running])
        kept = await self._call(lambda: self._get(key))
        if kept is not None:
            if kept[0] != fingerprint:
                raise KeyReused(key)
            return kept[1]
        future: asyncio.Future[tuple[str, Answer]] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            answer = await work()
            if answer.status < 500:
                await self._call(lambda: self._put(key, fingerprint, answer))
            future.set_result((fingerprint, answer))
            return answer
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # retrieved: waiters only wait
            raise
        finally:
            del self._running[key]
