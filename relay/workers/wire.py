"""Framing between the scheduler process and injection workers: length-prefixed pickles of
plain tuples, over a unix socket only our own processes can open (mode 0600).

Frames: (kind, request_id, payload). Requests from the scheduler get a reply frame with the
same id: ("ok", id, result) or ("error", id, (error type name, message)). Workers send
notifications with id 0: ("hello", 0, shard), ("new", 0, (envelope, reception fields,
content)),
("complaint", 0, (binding, domain, feedback type, message id)).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

HEADER = struct.Struct("!I")
MAX_FRAME = 256 << 20

Frame = tuple[str, int, Any]


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    head = await reader.readexactly(HEADER.size)
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes is too large")
    frame = pickle.loads(await reader.readexactly(size))
    if not (isinstance(frame, tuple) and len(frame) == 3):
        raise ConnectionError("malformed frame")
    return (str(frame[0]), int(frame[1]), frame[2])


def encode_frame(kind: str, request_id: int, payload: Any) -> bytes:
    body = pickle.dumps((kind, request_id, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body
