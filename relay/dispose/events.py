"""One JSON line per event: reception, delivery, transient failure, bounce, expiration,
suspension. Written to a file the operator names (`event_log`), buffered, and on disk
(in the OS, flushed) within a second of being logged even when nothing follows: a write
that does not flush arms a timer on the running loop that does.

Rotation: past `max_size` bytes (0: never), or when asked (`rotate()`, on SIGUSR1), the
file becomes `NAME.1` (`NAME.1` becomes `NAME.2`, ... up to `keep`; the oldest goes) and a
new file is opened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import IO

from relay.clock import Cancellable, Clock, SystemClock
from relay.spool.model import Envelope

log = logging.getLogger("relay")
# Built once (json.dumps with non-default arguments builds an encoder per call).
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode
_STRING = json.encoder.encode_basestring_ascii  # the escaper _ENCODE uses


FLUSH_WITHIN = 0.5  # seconds: a buffered event reaches the file at most this late (+ a tick)


class EventLog:
    def __init__(
        self,
        path: str | Path | None,
        *,
        max_size: int = 0,
        keep: int = 5,
        clock: Clock | None = None,
    ) -> None:
        self._stream: IO[str] | None = None
        self.path = Path(path) if path else None
        self.max_size = max_size
        self.keep = max(1, keep)
        self._size = 0
        self._clock: Clock = clock or SystemClock()
        self._timer: Cancellable | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        self._last_flush = time.monotonic()
        self.counts: dict[str, int] = {}

    def _open(self) -> None:
        assert self.path is not None
        self._stream = open(self.path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        self._size = self._stream.tell()

    def __call__(self, kind: str, fields: dict[str, object]) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._stream is None:
            return
        record = {"time": round(time.time(), 3), "event": kind, **fields}
        self._write(_ENCODE(record) + "\n")

    def reception(self, envelope: Envelope) -> None:
        """A message was accepted: its id, sender, recipient count, group, binding, size
        (tenant and campaign when it has them), as `self("reception", {...})` would write
        them, formatted directly (it is written for every message)."""
        self.counts["reception"] = self.counts.get("reception", 0) + 1
        if self._stream is None:
            return
        binding = "null" if envelope.binding is None else _STRING(envelope.binding)
        labels = ""
        if envelope.tenant is not None:
            labels += f',"tenant":{_STRING(envelope.tenant)}'
        if envelope.campaign is not None:
            labels += f',"campaign":{_STRING(envelope.campaign)}'
        self._write(
            f'{{"time":{round(time.time(), 3)!r},"event":"reception",'
            f'"message_id":{_STRING(envelope.message_id)},"sender":{_STRING(envelope.sender)},'
            f'"recipients":{len(envelope.recipients)},'
            f'"binding_group":{_STRING(envelope.binding_group)},"binding":{binding},'
            f'"size":{int(envelope.size)}{labels}}}\n'
        )

    def _write(self, line: str) -> None:
        assert self._stream is not None
        self._stream.write(line)
        self._size += len(line)  # ASCII: characters are bytes
        if self.max_size and self._size >= self.max_size:
            self.rotate()
            return
        now = time.monotonic()
        if now - self._last_flush > FLUSH_WITHIN:
            self.flush()
        elif self._timer is None:
            # Without a loop (a tool, a test) the next write or close flushes.
            with contextlib.suppress(RuntimeError):
                self._timer = self._clock.call_later(FLUSH_WITHIN, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_flush = time.monotonic()
        if self._stream is not None:
            self._stream.flush()

    def rotate(self) -> None:
        """Close the file, shift NAME.1.. NAME.keep along, and start a new NAME (an empty
        file stays: rotating it would push a full one out)."""
        if self._stream is None or self.path is None or self._size == 0:
            return
        self.flush()
        self._stream.close()
        self._stream = None
        path = str(self.path)
        try:
            for n in range(self.keep - 1, 0, -1):
                if os.path.exists(f"{path}.{n}"):
                    os.replace(f"{path}.{n}", f"{path}.{n + 1}")
            os.replace(path, f"{path}.1")
        except OSError as err:  # keep logging into the file as it is
            log.error("event log %s not rotated: %s", path, err)
        self._open()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self._stream = None
