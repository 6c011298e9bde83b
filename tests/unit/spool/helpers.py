"""Shared test helpers for the spool tests."""

from __future__ import annotations

import os
from pathlib import Path

from relay.spool import NewMessage


def message(n: int = 0, *, recipients: int = 2, size: int = 2048) -> NewMessage:
    body = (f"Subject: test {n}\r\n\r\n".encode() + os.urandom(size))[:size]
    return NewMessage(
        sender=f"sender{n}@example.com",
        recipients=tuple(f"rcpt{i}@example.net" for i in range(recipients)),
        binding_group="group1",
        binding=None if n % 2 else "b1",
        content=body,
        received_at=1_700_000_000.0 + n,
    )


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def leftovers(directory: Path) -> list[Path]:
    """Temporary files, and segments being deleted, left in the spool directory."""
    return sorted([*directory.glob("*.tmp"), *directory.glob("*.dead")])
