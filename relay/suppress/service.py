"""One process's suppression list: the in-memory set injection asks (entries.py), its
SQLite file (store.py), and the two ways a process keeps them in step: the daemon (the
only writer) changes the set at once and writes behind; an injection worker follows the
file (`follow`: the changes since the last it saw, when PRAGMA data_version moved)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from relay.suppress.entries import Action, Entry, Suppressions, key
from relay.suppress.store import FILE, SuppressionStore, SuppressionStoreError

log = logging.getLogger("relay.suppress")
FOLLOW_INTERVAL = 0.25  # seconds: how late a worker may learn of a change


def action_of(text: str) -> Action:
    """`suppression_action`'s value."""
    return "drop" if text == "drop" else "reject"


class SuppressionList:
    def __init__(self, directory: Path, *, action: Action, clock: Callable[[], float]) -> None:
        self.memory = Suppressions(action=action)
        self.store = SuppressionStore(directory / FILE)
        self.clock = clock
        self._seq = 0  # the last change applied (followers)
        self._pending: list[Entry] = []  # recorded, not yet written
        self._writer: asyncio.Task[None] | None = None

    async def open(self, *, writer: bool) -> None:
        entries, self._seq = await self.store.open(writer=writer)
        self.memory.replace(entries)
        log.info("suppression list: %d entries", len(self.memory))

    # --- the daemon's changes -----------------------------------------------------------

    def record(self, tenant: str | None, address: str, reason: str, source: str) -> bool:
        """A hard bounce or a complaint: suppressed at once, written behind (batched).
        True if the entry is new."""
        scope, lowered = key(tenant, address)
        if not self.memory.add(scope, lowered):
            return False
        self._pending.append(Entry(scope, lowered, reason, source, self.clock()))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())
        return True

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.store.add(batch)
            except SuppressionStoreError as err:  # still suppressed in memory until restart
                log.error("%s; %d entries not written", err, len(batch))

    async def add(self, entries: Sequence[Entry]) -> list[Entry]:
        """An operator's entries, durable when this returns; the ones that are new."""
        added = await self.store.add(entries)
        for e in entries:
            self.memory.add(e.tenant, e.address)
        return added

    async def remove(self, tenant: str | None, address: str) -> bool:
        scope, lowered = key(tenant, address)
        await self.flush()  # a bounce recorded just before is not written back after
        removed = await self.store.remove(scope, lowered)
        self.memory.remove(scope, lowered)
        return removed

    async def flush(self) -> None:
        writer = self._writer
        if writer is not None:
            await asyncio.shield(writer)

    # --- a worker following the file ----------------------------------------------------

    async def catch_up(self) -> int:
        """Apply the changes another process committed; how many."""
        changes = await self.store.changes(self._seq)
        if not changes:
            return 0
        for seq, tenant, address, added in changes:
            if added:
                self.memory.add(tenant, address)
            else:
                self.memory.remove(tenant, address)
            self._seq = seq
        return len(changes)

    async def follow(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        while True:
            await sleep(FOLLOW_INTERVAL)
            try:
                await self.catch_up()
            except SuppressionStoreError as err:
                log.error("%s; the list stays as it was", err)

    async def close(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self.flush()
        await self.store.close()
