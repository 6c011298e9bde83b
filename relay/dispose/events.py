"""One JSON line per event: reception, delivery, transient failure, bounce, expiration,
suspension. Written to a file the operator names (`event_log`), buffered, flushed often."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO

from relay.spool.model import Envelope

# Built once (json.dumps with non-default arguments builds an encoder per call).
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode
_STRING = json.encoder.encode_basestring_ascii  # the escaper _ENCODE uses


class EventLog:
    def __init__(self, path: str | Path | None) -> None:
        self._stream: IO[str] | None = None
        self.path = Path(path) if path else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self.path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        self._last_flush = time.monotonic()
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str, fields: dict[str, object]) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._stream is None:
            return
        record = {"time": round(time.time(), 3), "event": kind, **fields}
        self._write(_ENCODE(record) + "\n")

    def reception(self, envelope: Envelope) -> None:
        """A message was accepted: its id, sender, recipient count, group, binding and
        size, as `self("reception", {...})` would write them, formatted directly (it is
        written for every message)."""
        self.counts["reception"] = self.counts.get("reception", 0) + 1
        if self._stream is None:
            return
        binding = "null" if envelope.binding is None else _STRING(envelope.binding)
        self._write(
            f'{{"time":{round(time.time(), 3)!r},"event":"reception",'
            f'"message_id":{_STRING(envelope.message_id)},"sender":{_STRING(envelope.sender)},'
            f'"recipients":{len(envelope.recipients)},'
            f'"binding_group":{_STRING(envelope.binding_group)},"binding":{binding},'
            f'"size":{int(envelope.size)}}}\n'
        )

    def _write(self, line: str) -> None:
        assert self._stream is not None
        self._stream.write(line)
        now = time.monotonic()
        if now - self._last_flush > 0.5:
            self._stream.flush()
            self._last_flush = now

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self._stream = None
