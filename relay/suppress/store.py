"""The suppression list on disk: SQLite (the stdlib's sqlite3) in WAL mode, in the spool
directory, every call on one thread of its own (never on the event loop).

Tables: `entries` (one row per (tenant, address)) and `changes` (each add or remove, in
order, numbered by an AUTOINCREMENT `seq` that never goes back): a process that follows
the list (an injection worker) loads every entry once, then applies the changes after the
last `seq` it saw whenever `PRAGMA data_version` says another connection committed. Only
the daemon writes; it empties `changes` when it opens the file (every follower starts
after it and loads the entries).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from relay.suppress.entries import Entry

FILE = "suppression.sqlite"
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    tenant TEXT NOT NULL,
    address TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, address)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    address TEXT NOT NULL,
    added INTEGER NOT NULL
);
"""

Change = tuple[int, str, str, bool]  # (seq, tenant, address, added: else removed)


class SuppressionStoreError(OSError):
    """The suppression list's file cannot be opened or written; the message names it."""


class SuppressionStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="suppression")
        self._version = -1

    async def _run(self, function: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, function, *args)
        except sqlite3.Error as err:
            raise SuppressionStoreError(f"suppression list {self.path}: {err}") from None

    # --- the calls (each runs on the store's thread) ------------------------------------

    def _open(self, writer: bool) -> tuple[list[tuple[str, str]], int]:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")  # an answered add survives a power cut
        db.executescript(_SCHEMA)
        if writer:
            db.execute("DELETE FROM changes")
        self._db = db
        self._version = int(db.execute("PRAGMA data_version").fetchone()[0])
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        entries = [(str(t), str(a)) for t, a in db.execute("SELECT tenant, address FROM entries")]
        return entries, int(row[0]) if row else 0

    def _add(self, entries: Sequence[Entry]) -> list[Entry]:
        db = self._connection()
        added = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for e in entries:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?)",
                    (e.tenant, e.address, e.reason, e.source, e.created),
                )
                if cursor.rowcount:
                    db.execute(
                        "INSERT INTO changes (tenant, address, added) VALUES (?, ?, 1)",
                        (e.tenant, e.address),
                    )
                    added.append(e)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return added

    def _remove(self, tenant: str, address: str) -> bool:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "DELETE FROM entries WHERE tenant = ? AND address = ?", (tenant, address)
            )
            if cursor.rowcount:
                db.execute(
                    "INSERT INTO changes (tenant, address, added) VALUES (?, ?, 0)",
                    (tenant, address),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return bool(cursor.rowcount)

    def _list(
        self, tenant: str | None, address: str | None, limit: int, offset: int
    ) -> tuple[list[Entry], int]:
        db = self._connection()
        where, args = [], []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if address is not None:
            where.append("address = ?")
            args.append(address)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = int(db.execute(f"SELECT COUNT(*) FROM entries{clause}", args).fetchone()[0])
        rows = db.execute(
            f"SELECT tenant, address, reason, source, created FROM entries{clause}"
            " ORDER BY tenant, address LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [Entry(str(t), str(a), str(r), str(s), float(c)) for t, a, r, s, c in rows], total

    def _changes(self, after: int) -> list[Change] | None:
        """The changes after `after`, or None when no other connection committed since the
        last call (the cheap, common answer)."""
        db = self._connection()
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version:
            return None
        self._version = version
        rows = db.execute(
            "SELECT seq, tenant, address, added FROM changes WHERE seq > ? ORDER BY seq",
            (after,),
        )
        return [(int(s), str(t), str(a), bool(d)) for s, t, a, d in rows]

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the suppression list is not open")
        return self._db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- the interface (coroutines, off the event loop) ----------------------------------

    async def open(self, *, writer: bool) -> tuple[list[tuple[str, str]], int]:
        """Open (creating) the file: every (tenant, address) and the last change's seq."""
        result: tuple[list[tuple[str, str]], int] = await self._run(self._open, writer)
        return result

    async def add(self, entries: Sequence[Entry]) -> list[Entry]:
        """Store the entries in one transaction; the ones that were not there yet."""
        result: list[Entry] = await self._run(self._add, list(entries))
        return result

    async def remove(self, tenant: str, address: str) -> bool:
        result: bool = await self._run(self._remove, tenant, address)
        return result

    async def entries(
        self,
        tenant: str | None = None,
        address: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Entry], int]:
        """A page of entries (by tenant, then address) and how many match in all."""
        result: tuple[list[Entry], int] = await self._run(
            self._list, tenant, address, limit, offset
        )
        return result

    async def changes(self, after: int) -> list[Change] | None:
        result: list[Change] | None = await self._run(self._changes, after)
        return result

    async def close(self) -> None:
        try:
            await self._run(self._close)
        finally:
            self._thread.shutdown(wait=False)
