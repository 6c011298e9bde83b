"""The bounded set of message bodies kept in RAM (least recently used goes first)."""

from __future__ import annotations

from collections import OrderedDict


class BodyCache:
    def __init__(self, max_entries: int) -> None:
        self._max = max(0, max_entries)
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, key: str) -> bytes | None:
        body = self._bodies.get(key)
        if body is None:
            self.misses += 1
            return None
        self.hits += 1
        self._bodies.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        if self._max == 0:
            return
        old = self._bodies.pop(key, None)
        if old is not None:
            self.bytes -= len(old)
        self._bodies[key] = body
        self.bytes += len(body)
        while len(self._bodies) > self._max:
            _, evicted = self._bodies.popitem(last=False)
            self.bytes -= len(evicted)

    def discard(self, key: str) -> None:
        body = self._bodies.pop(key, None)
        if body is not None:
            self.bytes -= len(body)
