"""The segment log's deletions stay oldest first: a segment deleted at once (a full disk
wants its space now) waits for the ones handed to the deletion thread before it, so a
crash can never keep an old segment whose overriding records went with a newer one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from relay.spool.fileops import FileOps
from relay.spool.segments import SegmentLog


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
