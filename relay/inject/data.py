"""Read the DATA phase: a state machine fed bytes, no I/O (the SMTP smuggling defence).

- The message ends only at <CRLF>.<CRLF> (a line that is exactly "." after a CRLF, or at
  the very start of DATA). `\\n.\\n`, `\\r.\\r`, `\\n.\\r\\n` and the like never end it.
- A bare CR or bare LF anywhere refuses the message with 550 5.5.2, unless
  `normalize` is set, in which case each becomes CRLF in the stored content (but still
  never ends the message, and never starts a dot-stuffed line).
- A NUL octet refuses the message (550 5.5.2) in both modes.
- A text line longer than 1000 octets including CRLF (RFC 5321 §4.5.3.1.6; 1001 with a
  transparency dot): 500 5.5.2. More than `max_size` octets of content: 552 5.3.4.
Once refused, the rest of the data is read and discarded up to the terminator, and only
then is the reply sent (RFC 5321 §4.2.5); memory stays bounded by the limits.
"""

from __future__ import annotations

import re

from relay.inject import replies

MAX_TEXT_LINE = 998  # octets, not counting CRLF

_BARE = re.compile(rb"[\r\n]")


class DataReader:
    def __init__(self, *, max_size: int, normalize: bool = False) -> None:
        self._max_size = max_size
        self._normalize = normalize
        self._parts: list[bytes] = []
        self._size = 0
        self._pending = bytearray()  # bytes of the current line, CRLF not yet seen
        self._overflowed = False  # the current line was too long and partly discarded
        self._refusal: str | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def refusal(self) -> str | None:
        """The reply refusing the message, or None while it is acceptable."""
        return self._refusal

    def feed(self, chunk: bytes) -> bytes:
        """Consume bytes; return those after the terminator (empty until it is seen)."""
        if self._done:
            return chunk
        self._pending += chunk
        start = 0
        while True:
            end = self._pending.find(b"\r\n", start)
            if end < 0:
                break
            line = bytes(self._pending[start:end])
            start = end + 2
            if line == b"." and not self._overflowed:
                self._done = True
                rest = bytes(self._pending[start:])
                self._pending.clear()
                return rest
            self._line(line)
        del self._pending[:start]
        if len(self._pending) > MAX_TEXT_LINE + 2:
            # Keep only the last octet: it may be the CR of the CRLF that ends this line.
            self._refuse(replies.LINE_TOO_LONG)
            self._check_octets(bytes(self._pending[:-1]))
            del self._pending[:-1]
            self._overflowed = True
        return b""

    def content(self) -> bytes:
        """The message as received: CRLF line ends, dot-unstuffed. Only once done, unrefused."""
        if not self._done or self._refusal is not None:
            raise RuntimeError("no acceptable message")
        return b"".join(self._parts)

    def _line(self, line: bytes) -> None:
        overflowed, self._overflowed = self._overflowed, False
        if overflowed:
            self._check_octets(line)
            return
        if line.startswith(b"."):
            line = line[1:]
        self._check_octets(line)
        if self._refusal is not None:
            return
        if self._normalize and _BARE.search(line):
            line = re.sub(rb"\r\n?|\n", b"\r\n", line)
            if any(len(piece) > MAX_TEXT_LINE for piece in line.split(b"\r\n")):
                self._refuse(replies.LINE_TOO_LONG)
                return
        elif len(line) > MAX_TEXT_LINE:
            self._refuse(replies.LINE_TOO_LONG)
            return
        self._size += len(line) + 2
        if self._max_size and self._size > self._max_size:
            self._refuse(replies.MESSAGE_TOO_BIG)
            return
        self._parts.append(line)
        self._parts.append(b"\r\n")

    def _check_octets(self, data: bytes) -> None:
        if b"\x00" in data:
            self._refuse(replies.NUL_IN_DATA)
        elif not self._normalize and _BARE.search(data):
            self._refuse(replies.BARE_LINE_ENDING)

    def _refuse(self, reply: str) -> None:
        if self._refusal is None:
            self._refusal = reply
            self._parts.clear()
