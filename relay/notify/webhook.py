"""One webhook: POST the event log's records, in order, as JSON arrays, at least once.

Every `max_delay` seconds (and at once while there is more) the records after the durable
cursor are read (tail.py), those of the configured kinds POSTed in arrays of up to
`batch_size`, signed (`X-Relay-Signature: sha256=<hex HMAC-SHA256 of the body>` when a
secret is set). Only a 2xx answer moves the cursor on, written durably (temp file, fsync,
rename) before the next batch: a restart or an endpoint down for an hour resends from
where it stopped, so a receiver may see a batch twice, never miss one (unless the event
log rotated past it meanwhile: counted as `lost`). Failures back off exponentially
(0.5 s doubling to 60 s). A webhook without a cursor starts at the end of the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from relay.clock import Clock
from relay.durable import write_atomically
from relay.notify import tail
from relay.notify.settings import WebhookSettings

log = logging.getLogger("relay.webhook")
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 60.0
TIMEOUT = 30.0


@dataclass(slots=True)
class WebhookStatistics:
    sent: int = 0  # events delivered (2xx)
    posts: int = 0
    failures: int = 0  # failed POSTs
    lag_bytes: int = 0  # of the event log not yet read
    lost: int = 0  # times the cursor's file was rotated out before it was read


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def load_cursor(path: Path) -> tail.Cursor | None:
    try:
        inode, offset = json.loads(path.read_text())
        return int(inode), int(offset)
    except (OSError, ValueError, TypeError):
        return None


def save_cursor(path: Path, cursor: tail.Cursor) -> None:
    write_atomically(json.dumps(list(cursor)), path)


def start_cursor(log_path: Path) -> tail.Cursor:
    """The end of the log now (a new webhook sends what happens from now on)."""
    try:
        status = os.stat(log_path)
    except FileNotFoundError:
        return (0, 0)
    return (status.st_ino, status.st_size)


class Webhook:
    def __init__(self, settings: WebhookSettings, log_path: Path, keep: int, clock: Clock) -> None:
        self.settings = settings
        self.log_path = log_path
        self.keep = keep
        self.clock = clock
        self.statistics = WebhookStatistics()

    def _select(self, lines: list[bytes]) -> list[bytes]:
        kinds = self.settings.events
        if not kinds:
            return lines
        chosen = []
        for line in lines:
            try:
                kind = json.loads(line).get("event")
            except (ValueError, AttributeError):
                continue
            if kind in kinds:
                chosen.append(line)
        return chosen

    async def run(self) -> None:
        s = self.settings
        cursor = await asyncio.to_thread(load_cursor, s.state)
        if cursor is None:
            cursor = await asyncio.to_thread(start_cursor, self.log_path)
            await asyncio.to_thread(save_cursor, s.state, cursor)
        failures = 0
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                batch = await asyncio.to_thread(
                    tail.read, self.log_path, self.keep, cursor, s.batch_size
                )
                self.statistics.lag_bytes = batch.behind
                if batch.lost:
                    self.statistics.lost += 1
                    log.error("webhook %s: the event log rotated past its cursor", s.name)
                if not batch.lines:
                    if batch.cursor != cursor:
                        cursor = batch.cursor
                        await asyncio.to_thread(save_cursor, s.state, cursor)
                    await self.clock.sleep(s.max_delay)
                    continue
                chosen = self._select(batch.lines)
                if chosen and not await self._post(session, chosen):
                    failures += 1
                    await self.clock.sleep(min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (failures - 1)))
                    continue
                failures = 0
                cursor = batch.cursor
                await asyncio.to_thread(save_cursor, s.state, cursor)
                if len(batch.lines) < s.batch_size:
                    await self.clock.sleep(s.max_delay)

    async def _post(self, session: aiohttp.ClientSession, lines: list[bytes]) -> bool:
        s = self.settings
        body = b"[" + b",".join(lines) + b"]"
        headers = {"Content-Type": "application/json", "X-Relay-Webhook": s.name}
        if s.secret is not None:
            headers["X-Relay-Signature"] = signature(s.secret, body)
        self.statistics.posts += 1
        try:
            async with session.post(s.url, data=body, headers=headers) as reply:
                await reply.read()
                if 200 <= reply.status < 300:
                    self.statistics.sent += len(lines)
                    return True
                log.warning("webhook %s: %s answered %d", s.name, s.url, reply.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            log.warning("webhook %s: %s: %s", s.name, s.url, err)
        self.statistics.failures += 1
        return False
