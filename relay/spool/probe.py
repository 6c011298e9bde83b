"""Can the spool be written? A durable write of a small file in its directory, then removed
(the health check's question; the spool's own writes answer it for each message)."""

from __future__ import annotations

import os
from pathlib import Path

from relay.spool.errors import SpoolError, from_os_error
from relay.spool.fileops import FileOps

PROBE_NAME = ".health-probe"


def probe_writable(directory: Path, ops: FileOps | None = None) -> None:
    """Create, write, fsync and remove a probe file in `directory`; raise SpoolError (full
    or write error, naming the directory) if any step fails."""
    ops = ops or FileOps()
    if not directory.is_dir():
        raise SpoolError(f"spool directory {directory} does not exist (or is not a directory)")
    path = str(directory / f"{PROBE_NAME}-{os.getpid()}")
    try:
        fd = ops.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            ops.pwrite(fd, b"relay health probe\n", 0)
            ops.fsync(fd)
        finally:
            ops.close(fd)
        ops.unlink(path)
    except OSError as error:
        raise from_os_error(error, f"spool directory {directory}") from error
