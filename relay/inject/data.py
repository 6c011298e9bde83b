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

BDAT (RFC 3030) content goes through the same reader: `ChunkFeeder` dot-stuffs each chunk
as a DATA client would (so an embedded <CRLF>.<CRLF> is text, never an end) and ends the
message with the terminator at the LAST chunk; every rule above applies to it unchanged.

Speed: each chunk's complete lines are checked at once with C-level scans (`find`,
`count`, `split`); only a chunk that breaks a rule (or any data after a refusal, or
while normalizing bare line ends) goes through the line-by-line path, which decides the
reply. Both paths accept and refuse exactly the same input.
"""

from __future__ import annotations

import re

from relay.inject import replies

MAX_TEXT_LINE = 998  # octets, not counting CRLF

_BARE = re.compile(rb"[\r\n]")
_CRLF_DOT_CRLF = b"\r\n.\r\n"


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
        self._tail: bytes | None = None  # after a refusal: the last octets (see _discard)

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
        if self._refusal is not None:
            return self._discard(chunk)
        pending = self._pending
        if pending:
            pending += chunk
            data = bytes(pending)
            pending.clear()
        else:
            data = chunk
        # `data` starts at the start of a line: every CRLF in it ends a line.
        if data[:3] == b".\r\n":
            self._done = True
            return data[3:]
        end = data.find(_CRLF_DOT_CRLF)
        if end >= 0:
            lines, rest = data[: end + 2], data[end + 5 :]
        else:
            cut = data.rfind(b"\r\n") + 2  # 1 when there is none: nothing complete yet
            if cut == 1:
                lines, rest = b"", data
            else:
                lines, rest = data[:cut], data[cut:]
        if lines and not self._take_lines(lines):
            # A rule is broken somewhere in these lines: let the line-by-line path decide.
            leftover = self._feed_lines(data)
            return leftover
        if end >= 0:
            self._done = True
            return rest
        if rest:
            if len(rest) > MAX_TEXT_LINE + 2:
                return self._feed_lines(rest)
            pending += rest
        return b""

    def _take_lines(self, lines: bytes) -> bool:
        """Accept complete CRLF-ended lines that break no rule; False (nothing taken) if any
        might, so the caller can replay them line by line."""
        if lines[:1] == b".":
            lines = lines[1:]
        if b"\r\n." in lines:
            lines = lines.replace(b"\r\n.", b"\r\n")
        texts = lines.split(b"\r\n")  # one scan; then CR, LF or NUL left in a text is bad
        joined = b"".join(texts)
        if b"\r" in joined or b"\n" in joined or b"\x00" in joined:
            return False
        if len(lines) > MAX_TEXT_LINE + 2 and max(map(len, texts)) > MAX_TEXT_LINE:
            return False
        size = self._size + len(lines)
        if self._max_size and size > self._max_size:
            return False
        self._size = size
        self._parts.append(lines)
        return True

    def _feed_lines(self, chunk: bytes) -> bytes:
        """The line-by-line path (`feed`'s reference behaviour)."""
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

    def _discard(self, chunk: bytes) -> bytes:
        """After a refusal: only look for the terminator, at C speed (the reply is decided;
        a 100 MB message over a 10 MB limit costs a `find` per chunk, not a loop per line).
        `_tail` ends the stream read so far, with a CRLF standing for a line start, so the
        terminator is the first <CRLF>.<CRLF> in `_tail + chunk` (exactly where the
        line-by-line path would end)."""
        tail = self._tail
        if tail is None:  # the line-by-line path was reading until now
            pending = bytes(self._pending)
            self._pending.clear()
            tail = pending if self._overflowed else b"\r\n" + pending
            self._overflowed = False
        data = tail + chunk
        end = data.find(_CRLF_DOT_CRLF)
        if end >= 0:
            self._done = True
            self._tail = None
            return data[end + 5 :]
        self._tail = data[-4:]
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
        self._parts.append(line + b"\r\n")

    def _check_octets(self, data: bytes) -> None:
        if b"\x00" in data:
            self._refuse(replies.NUL_IN_DATA)
        elif not self._normalize and _BARE.search(data):
            self._refuse(replies.BARE_LINE_ENDING)

    def _refuse(self, reply: str) -> None:
        if self._refusal is None:
            self._refusal = reply
            self._parts.clear()


class ChunkFeeder:
    """BDAT chunks into a DataReader as the equivalent DATA stream: lines starting with "."
    get a second one (across chunk boundaries too), and `finish` adds the terminator (with
    a CRLF first when the content does not end with one, as Postfix does)."""

    def __init__(self, reader: DataReader) -> None:
        self.reader = reader
        self._tail = b"\r\n"  # the last two octets so far: the start counts as a line start

    def feed(self, chunk: bytes) -> None:
        if not chunk or self.reader.refusal is not None:
            return  # refused: the octets are only counted off (the reply is decided)
        stuffed = chunk.replace(b"\r\n.", b"\r\n..")
        tail = self._tail
        if chunk[:1] == b"." and tail == b"\r\n":
            stuffed = b"." + stuffed
        elif chunk[:2] == b"\n." and tail[-1:] == b"\r":
            stuffed = b"\n." + stuffed[1:]
        self._tail = (tail + chunk[-2:])[-2:]
        self.reader.feed(stuffed)

    def finish(self) -> None:
        """The LAST chunk was read: end the message."""
        self.reader.feed(b".\r\n" if self._tail == b"\r\n" else b"\r\n.\r\n")
        assert self.reader.done
