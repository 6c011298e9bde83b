"""The signing processes' wire format (pure): length-prefixed frames over a pipe.

    frame = length (4 bytes, big-endian: what follows it) | kind (1 byte) | number (8) | body

relay -> signing process:
    PROFILES  number: the profiles' id     body: the pickled profiles (keys as PEM)
    SIGN      number: the job              body: pickled (profiles id, authenticated, now,
                                                   content)
signing process -> relay:
    DONE      number: the job              body: pickled (fields added on top, signature
                                                   descriptions, unsigned reason, domain)
    FAILED    number: the job              body: what went wrong (UTF-8)

    reader = Reader()
    for kind, number, body in reader.feed(chunk): ...   # whole frames only, in order
"""

from __future__ import annotations

import struct

PROFILES = b"P"
SIGN = b"S"
DONE = b"D"
FAILED = b"F"
KINDS = frozenset({PROFILES, SIGN, DONE, FAILED})

_HEAD = struct.Struct(">IcQ")
_AFTER_LENGTH = _HEAD.size - 4  # kind and number, counted in the length
PROFILE_SETS = 64  # profile sets kept on either side: relay numbers at most this many at once
MAX_FRAME = 1 << 30  # bytes; a longer length is garbage (no message is this big)

Frame = tuple[bytes, int, bytes]


class FrameError(Exception):
    """Bytes on a signing pipe that are not frames: the other side is broken."""


def frame(kind: bytes, number: int, body: bytes) -> bytes:
    return _HEAD.pack(_AFTER_LENGTH + len(body), kind, number) + body


class Reader:
    """Whole frames out of a byte stream fed in chunks of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += chunk
        frames: list[Frame] = []
        start = 0
        while len(buffer) - start >= _HEAD.size:
            length, kind, number = _HEAD.unpack_from(buffer, start)
            if length < _AFTER_LENGTH or length > MAX_FRAME:
                raise FrameError(f"a frame of {length} bytes (at most {MAX_FRAME})")
            if kind not in KINDS:
                raise FrameError(f"a frame of unknown kind {kind!r}")
            end = start + 4 + length
            if end > len(buffer):
                break
            frames.append((kind, number, bytes(buffer[start + _HEAD.size : end])))
            start = end
        if start:
            del buffer[:start]
        return frames
