"""The segment log: its deletions stay oldest first (a segment deleted at once, because a
full disk wants its space now, waits for the ones handed to the deletion thread before it,
so a crash can never keep an old segment whose overriding records went with a newer one),
and with fsync on, zeros are written ahead of the records so that appends do not grow the
file."""

from __future__ import annotations

import errno
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from relay.spool.fileops import FileOps
from relay.spool.segments import PREALLOCATE, SegmentLog


class Recorded(FileOps):
    """Records unlinks; renames out of the log wait until `free` is set."""

    def __init__(self) -> None:
        self.free = threading.Event()
        self.gone: list[str] = []

    def rename(self, src: str, dst: str) -> None:
        if dst.endswith(".dead"):
            assert self.free.wait(30), "never released"
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        self.gone.append(Path(path).name.removesuffix(".dead"))
        super().unlink(path)


def test_a_deletion_at_once_waits_for_the_gentle_ones_before_it(tmp_path: Path) -> None:
    ops = Recorded()
    log = SegmentLog(str(tmp_path), ops=ops, fsync=True, segment_bytes=64, sizes={}, next_number=0)
    for _ in range(3):  # three segments: each append fills one
        log.append([b"x" * 100])
    first, second, active = sorted(log.sizes)
    assert log.active == active
    log.delete_later([first])  # stuck in its rename
    with ThreadPoolExecutor(1) as other:
        at_once = other.submit(log.delete, [second])
        threading.Event().wait(0.2)
        assert not at_once.done(), "the newer segment went before the older one"
        ops.free.set()
        at_once.result(timeout=10)
    assert ops.gone == [Path(log.path(first)).name, Path(log.path(second)).name]
    log.close()


def _log(
    directory: Path, ops: FileOps, *, fsync: bool = True, segment_bytes: int = 1 << 30
) -> SegmentLog:
    return SegmentLog(
        str(directory), ops=ops, fsync=fsync, segment_bytes=segment_bytes, sizes={}, next_number=1
    )


def test_appends_overwrite_zeros_written_ahead_and_a_rotation_cuts_them_off(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path, FileOps(), segment_bytes=PREALLOCATE)
    first = log.append([b"a" * 1000])[0]
    path = Path(log.path(first.segment))
    grown = path.stat().st_size
    assert grown >= first.offset + first.length + PREALLOCATE  # zeros ahead, durable
    for _ in range(50):  # 50 KB more: inside what was written ahead, the file keeps its size
        log.append([b"b" * 1000])
    assert path.stat().st_size == grown
    assert log.read(first) == b"a" * 1000
    while log.active == first.segment:  # past segment_bytes: the next append rotates
        log.append([b"c" * 10_000])
    assert path.stat().st_size == log.sizes[first.segment]  # the zeros are cut off
    log.close()
    last = max(log.sizes)  # closing trims the active segment too
    assert Path(log.path(last)).stat().st_size == log.sizes[last]


def test_without_fsync_nothing_is_written_ahead(tmp_path: Path) -> None:
    log = _log(tmp_path, FileOps(), fsync=False)
    at = log.append([b"a" * 1000])[0]
    assert Path(log.path(at.segment)).stat().st_size == at.offset + at.length
    log.close()


class SmallDisk(FileOps):
    """A filesystem with room for `room` bytes of file data in all."""

    def __init__(self, room: int) -> None:
        self.room = room

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if offset + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().pwrite(fd, data, offset)


def test_a_disk_without_room_for_the_zeros_still_takes_the_records(tmp_path: Path) -> None:
    log = _log(tmp_path, SmallDisk(room=PREALLOCATE // 2))
    at = log.append([b"a" * 1000])[0]
    assert log.read(at) == b"a" * 1000
    path = Path(log.path(at.segment))
    assert path.stat().st_size == at.offset + at.length  # no zeros, none left behind
    more = log.append([b"b" * 1000])[0]  # and no second try (the disk is still small)
    assert path.stat().st_size == more.offset + more.length
    log.close()
