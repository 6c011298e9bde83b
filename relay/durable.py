"""Small state files (adaptive state, warm-up counts, holds, webhook cursors, MTA-STS
policies, TLS report counts) written so that a reader sees the old file or the new one,
never half of one, and the new one survives a crash once written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(text: str, path: str | Path) -> None:
    """Write `text` to `path` via a temp file, fsync and rename (blocking: use a thread)."""
    target = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
