"""Windowed event counts: a ring of time buckets with running totals.

`Window(span, buckets)` counts string keys ("attempt", "delivered", "bc:10", ...) over the last
`span` seconds, in `buckets` slots of `span / buckets` seconds each. Adding an event costs O(1)
(amortised over at most `buckets` slot clears, a constant); reading a total is one dict lookup.
Memory is bounded: at most `max_keys` distinct keys are counted, later ones fold into
`OVERFLOW`. Time only moves forward: an event older than the newest bucket counts in it.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["OVERFLOW", "Window", "fingerprint"]

OVERFLOW = "(other)"

_ADDRESS = re.compile(r"<[^>]*>|\S+@\S+")
_IP = re.compile(r"\[?\b(?:\d{1,3}\.){3}\d{1,3}\b\]?|\[?[0-9a-f]*:[0-9a-f:]+:[0-9a-f]*\]?", re.I)
_NUMBER = re.compile(r"\b[0-9a-f]*\d[0-9a-f]*\b", re.I)
_SPACE = re.compile(r"\s+")


def fingerprint(code: int | None, text: str, limit: int = 80) -> str:
    """A response text with the parts that vary per message (addresses, IPs, ids, numbers)
    replaced, so "421 too many connections from 1.2.3.4" and "... from 5.6.7.8" count as
    one response."""
    shape = _ADDRESS.sub("<>", text.lower())
    shape = _IP.sub("#ip", shape)
    shape = _NUMBER.sub("#", shape)
    shape = _SPACE.sub(" ", shape).strip()[:limit]
    return f"{code if code is not None else '---'} {shape}".strip()


class Window:
    __slots__ = ("_epochs", "_head", "_slots", "buckets", "max_keys", "span", "totals", "width")

    def __init__(self, span: float, buckets: int, max_keys: int | None = None) -> None:
        if span <= 0 or buckets < 1:
            raise ValueError("a window needs span > 0 and at least one bucket")
        self.span = float(span)
        self.buckets = int(buckets)
        self.width = self.span / self.buckets
        self.max_keys = max_keys
        self._slots: list[dict[str, int]] = [{} for _ in range(self.buckets)]
        self._epochs: list[int] = [-1] * self.buckets
        self._head: int | None = None  # the newest bucket index seen
        self.totals: dict[str, int] = {}

    # --- writing ---------------------------------------------------------------------
    def add(self, now: float, key: str, count: int = 1) -> None:
        slot = self._advance(now)
        limit = self.max_keys
        if limit is not None and key not in self.totals and len(self.totals) >= limit:
            key = OVERFLOW
        bucket = self._slots[slot]
        bucket[key] = bucket.get(key, 0) + count
        self.totals[key] = self.totals.get(key, 0) + count

    def clear(self) -> None:
        for bucket in self._slots:
            bucket.clear()
        self._epochs = [-1] * self.buckets
        self.totals.clear()

    # --- reading ---------------------------------------------------------------------
    def total(self, key: str, now: float | None = None) -> int:
        if now is not None:
            self._advance(now)
        return self.totals.get(key, 0)

    def sum(self, keys: tuple[str, ...] | list[str], now: float | None = None) -> int:
        if now is not None:
            self._advance(now)
        return sum(self.totals.get(key, 0) for key in keys)

    def expire(self, now: float) -> None:
        """Drop buckets older than the window (reading totals without adding an event)."""
        self._advance(now)

    def is_empty(self) -> bool:
        return not self.totals

    def epoch(self, now: float) -> int:
        """The bucket index `now` falls in (the same on every node with a synchronised clock)."""
        return math.floor(now / self.width)

    def bucket_counts(self, now: float) -> dict[int, dict[str, int]]:
        """The live buckets by index (drops those older than the window first)."""
        self._advance(now)
        return {
            epoch: dict(bucket)
            for epoch, bucket in zip(self._epochs, self._slots, strict=True)
            if bucket and epoch >= 0
        }

    # --- internals -------------------------------------------------------------------
    def _advance(self, now: float) -> int:
        index = math.floor(now / self.width)
        head = self._head
        if head is None:
            self._head = index
        elif index > head:
            if index - head >= self.buckets:
                self.clear()
            else:
                for step in range(head + 1, index + 1):  # at most `buckets` steps
                    self._drop(step % self.buckets)
            self._head = index
        else:
            index = head  # late events count in the newest bucket
        slot = index % self.buckets
        if self._epochs[slot] != index:
            self._drop(slot)
            self._epochs[slot] = index
        return slot

    def _drop(self, slot: int) -> None:
        bucket = self._slots[slot]
        for key, count in bucket.items():
            left = self.totals.get(key, 0) - count
            if left > 0:
                self.totals[key] = left
            else:
                self.totals.pop(key, None)
        bucket.clear()
        self._epochs[slot] = -1

    # --- state -----------------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        return {
            "span": self.span,
            "buckets": self.buckets,
            "head": self._head,
            "slots": [
                [epoch, dict(bucket)]
                for epoch, bucket in zip(self._epochs, self._slots, strict=True)
                if bucket
            ],
        }

    def load_data(self, data: dict[str, Any]) -> None:
        """Restore counts saved by `to_data` from a window of the same shape."""
        if float(data["span"]) != self.span or int(data["buckets"]) != self.buckets:
            raise ValueError("window shape changed")
        self.clear()
        head = data.get("head")
        self._head = None if head is None else int(head)
        for epoch, bucket in data["slots"]:
            epoch = int(epoch)
            slot = epoch % self.buckets
            self._epochs[slot] = epoch
            for key, count in bucket.items():
                if not isinstance(key, str) or not isinstance(count, int) or count <= 0:
                    raise ValueError("bad window count")
                self._slots[slot][key] = count
                self.totals[key] = self.totals.get(key, 0) + count
