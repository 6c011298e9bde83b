"""The append-only segment log: synchronous file work, run only on the spool's commit thread.

Segments are files named `<number>.seg` in the spool directory. The log appends a batch of
records to the active segment with one write, rotates to a new segment when the active one
is full, and deletes segments the store no longer needs. With fsync on, segments are opened
O_DSYNC: a write returns once its data (and the metadata needed to read it back) is on
stable storage, as a write followed by fdatasync would, in one system call, so the commit
thread wakes for the GIL once per batch instead of twice. A failed append is cut back off
the file so no partial record stays behind; after a failure that may have been the sync
(anything but "no space"), the segment is abandoned, since the kernel may have dropped the
dirty pages it could not write.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Sequence

from relay.spool.errors import SpoolError
from relay.spool.fileops import FileOps
from relay.spool.format import SEGMENT_HEADER_SIZE, encode_segment_header
from relay.spool.index import Location

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
TEMP_SUFFIX = ".tmp"


def segment_name(number: int) -> str:
    return f"{number:012d}{SEGMENT_SUFFIX}"


def segment_number(name: str) -> int | None:
    stem = name.removesuffix(SEGMENT_SUFFIX)
    if stem == name or not stem.isdigit():
        return None
    return int(stem)


class SegmentLog:
    def __init__(
        self,
        directory: str,
        *,
        ops: FileOps,
        fsync: bool,
        segment_bytes: int,
        sizes: dict[int, int],
        next_number: int,
    ) -> None:
        self._dir = directory
        self._ops = ops
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self.sizes = dict(sizes)  # every segment on disk -> its size
        self._next = next_number
        self._fd: int | None = None
        self.active: int | None = None
        self._broken = False
        self.fsyncs = 0

    def path(self, number: int) -> str:
        return os.path.join(self._dir, segment_name(number))

    # --- writing ------------------------------------------------------------------------

    def append(self, records: Sequence[bytes]) -> list[Location]:
        """Write records at the end of the active segment and make them durable."""
        if (
            self._fd is None
            or self._broken
            or self.active is None
            or self.sizes[self.active] >= self._segment_bytes
        ):
            self._rotate()
        assert self._fd is not None and self.active is not None
        fd, number = self._fd, self.active
        start = self.sizes[number]
        data = b"".join(records)
        try:
            self._write_all(fd, data, start)  # durable when it returns (O_DSYNC)
        except OSError as exc:
            no_space = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            self._cut_back(fd, start, fsync_failed=self._fsync and not no_space)
            raise
        if self._fsync:
            self.fsyncs += 1
        self.sizes[number] = start + len(data)
        locations = []
        offset = start
        for record in records:
            locations.append(Location(number, offset, len(record)))
            offset += len(record)
        return locations

    def _write_all(self, fd: int, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = self._ops.pwrite(fd, view, offset)
            if written <= 0:
                raise OSError(errno.EIO, "short write")
            view = view[written:]
            offset += written

    def _cut_back(self, fd: int, start: int, *, fsync_failed: bool) -> None:
        """Remove a failed append's bytes; abandon the segment if that cannot be trusted."""
        try:
            self._ops.ftruncate(fd, start)
            if self._fsync:
                self._ops.fsync(fd)
        except OSError as exc:
            log.error(
                "spool: cannot cut failed append off %s: %s", self.path(self.active or 0), exc
            )
            self._broken = True
        if fsync_failed:
            self._broken = True

    def _rotate(self) -> None:
        number = self._next
        self._next += 1
        path = self.path(number)
        temp = path + TEMP_SUFFIX
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | (os.O_DSYNC if self._fsync else 0)
        fd = self._ops.open(temp, flags)
        try:
            self._write_all(fd, encode_segment_header(number), 0)
            if self._fsync:
                self._ops.fsync(fd)
            self._ops.rename(temp, path)
        except OSError:
            self._ops.close(fd)
            with contextlib.suppress(OSError):
                self._ops.unlink(temp)
            raise
        self.sizes[number] = SEGMENT_HEADER_SIZE
        self._close_active()
        self._fd, self.active, self._broken = fd, number, False
        if self._fsync:
            self._ops.fsync_directory(self._dir)

    def _close_active(self) -> None:
        if self._fd is not None:
            try:
                self._ops.close(self._fd)
            except OSError as exc:
                log.warning("spool: closing segment %s: %s", self.active, exc)
            self._fd = None

    # --- reading and deleting -----------------------------------------------------------

    def read(self, location: Location) -> bytes:
        """Read one record; safe from any thread (opens the segment by name)."""
        fd = self._ops.open(self.path(location.segment), os.O_RDONLY)
        try:
            return self._ops.pread(fd, location.length, location.offset)
        finally:
            self._ops.close(fd)

    def delete(self, numbers: Sequence[int], *, with_active: bool = False) -> None:
        """Unlink segments; the active one only `with_active` (the next append rotates)."""
        for number in numbers:
            if number == self.active:
                if not with_active:
                    raise SpoolError(f"refusing to delete the active segment {number}")
                self._close_active()
                self.active = None
            with contextlib.suppress(FileNotFoundError):
                self._ops.unlink(self.path(number))
            self.sizes.pop(number, None)
        if numbers and self._fsync:
            self._ops.fsync_directory(self._dir)

    def close(self) -> None:
        self._close_active()
