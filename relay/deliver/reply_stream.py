"""SMTP replies out of a byte stream, in order: incremental, pure, no I/O.

    stream = ReplyStream()
    stream.feed(b"250 2.1.0 ok\\r\\n250-2.1.5 first\\r\\n250 2.1.5 second\\r\\n354 go")
    stream.ready        # deque([(250, "2.1.0 ok"), (250, "2.1.5 first\\n2.1.5 second")])
    stream.feed(b"\\r\\n")   # the 354 is complete now

Pipelined replies arrive several to a read, or split anywhere; `feed` takes whatever came
and queues every complete reply as (code, text), with multi-line text joined by newlines.
A line without a numeric code, a line over MAX_LINE_LENGTH or an unfinished reply over
MAX_PENDING bytes sets `failed` (the stream cannot be trusted after it) and stops parsing.
The code is taken as the first three bytes (validity, 200-599, is the caller's check).
"""

from __future__ import annotations

from collections import deque

__all__ = ["MAX_LINE_LENGTH", "MAX_PENDING", "MalformedReply", "ReplyStream"]

MAX_LINE_LENGTH = 8192
MAX_PENDING = MAX_LINE_LENGTH * 4


class MalformedReply(Exception):
    """The server sent something that is not an SMTP reply."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ReplyStream:
    __slots__ = ("_rest", "failed", "ready")

    def __init__(self) -> None:
        self.ready: deque[tuple[int, str]] = deque()
        self.failed: MalformedReply | None = None
        self._rest = b""  # the start of a reply not complete yet

    def feed(self, data: bytes) -> None:
        if self.failed is not None:
            return
        buffer = self._rest + data if self._rest else data
        start = 0
        try:
            start = self._parse(buffer)
        except MalformedReply as exc:
            self.failed = exc
            self._rest = b""
            return
        rest = buffer[start:]
        if len(rest) > MAX_PENDING:
            self.failed = MalformedReply("Response too long")
            rest = b""
        self._rest = rest

    def _parse(self, buffer: bytes) -> int:
        """Queue every complete reply in `buffer`; return where the incomplete rest starts."""
        ready = self.ready
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                return start
            line = buffer[start : end + 1]
            code = _code(line)
            if line[3:4] != b"-":  # the common case: a one-line reply
                ready.append((code, _text(line)))
                start = end + 1
                continue
            texts = [line[4:].strip(b" \t\r\n")]
            position = end + 1
            while True:
                end = buffer.find(b"\n", position)
                if end < 0:
                    return start  # the reply is not complete: keep it all for later
                line = buffer[position : end + 1]
                code = _code(line)
                texts.append(line[4:].strip(b" \t\r\n"))
                position = end + 1
                if line[3:4] != b"-":
                    break
            ready.append((code, b"\n".join(texts).decode("utf-8", "surrogateescape")))
            start = position


def _code(line: bytes) -> int:
    if len(line) > MAX_LINE_LENGTH:
        raise MalformedReply("Response too long")
    try:
        return int(line[:3])
    except ValueError:
        text = line.decode("utf-8", errors="ignore")
        raise MalformedReply(f"Malformed SMTP response line: {text}") from None


def _text(line: bytes) -> str:
    return line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape")
