"""A webhook's settings, as plain frozen data (relay/wiring builds them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    name: str
    url: str
    events: frozenset[str]  # empty: every kind
    batch_size: int
    max_delay: float
    secret_file: Path | None
    state: Path  # the durable cursor
    secret: bytes | None = None  # HMAC-SHA256 key, read from secret_file at start
