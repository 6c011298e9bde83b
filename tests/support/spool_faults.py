"""Disk faults at the spool's one file-call seam (relay.spool.FileOps), for tests where
the kernel offers no real way to make a write or an fsync fail (no device-mapper `error`
target, no FUSE): the unit tests of the spool and tests/reliability/test_disk_faults.py.

    ops = FaultyOps(); spool = await Spool.open(path, file_ops=ops)   # or Daemon(file_ops=)
    ops.sync_fault = errno.EIO       # every durable write fails as a failed fsync does
    ops.sync_fault = None            # the disk recovers
"""

from __future__ import annotations

import os

from relay.spool import FileOps


class FaultyOps(FileOps):
    """Raises a chosen OSError from pwrite (a write fault: half the data written; a sync
    fault: all of it written, as an O_DSYNC write whose flush failed) or open."""

    def __init__(self) -> None:
        self.write_fault: int | None = None
        self.sync_fault: int | None = None
        self.open_fault: int | None = None
        self.partial = True  # write half the data before failing, as a real disk would

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if self.sync_fault is not None:
            os.pwrite(fd, data, offset)
            raise OSError(self.sync_fault, os.strerror(self.sync_fault))
        if self.write_fault is not None:
            if self.partial and len(data) > 1:
                os.pwrite(fd, data[: len(data) // 2], offset)
            raise OSError(self.write_fault, os.strerror(self.write_fault))
        return super().pwrite(fd, data, offset)

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        if self.open_fault is not None and flags & os.O_CREAT:
            raise OSError(self.open_fault, os.strerror(self.open_fault))
        return super().open(path, flags, mode)

    def fsync(self, fd: int) -> None:
        if self.sync_fault is not None:
            raise OSError(self.sync_fault, os.strerror(self.sync_fault))
        super().fsync(fd)
