"""Reading the event log from a cursor across rotations (real files)."""

from __future__ import annotations

import os
from pathlib import Path

from relay.notify.tail import read
from relay.notify.webhook import load_cursor, save_cursor, signature, start_cursor


def test_reads_complete_lines_and_follows_rotation(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"1\n2\n3")  # "3" is still being written
    start = (os.stat(log).st_ino, 0)
    batch = read(log, 5, start, limit=10)
    assert (batch.lines, batch.lost, batch.behind) == ([b"1", b"2"], False, 1)
    assert read(log, 5, batch.cursor, limit=10).lines == []
    with open(log, "ab") as f:
        f.write(b"\n4\n")
    os.replace(log, tmp_path / "events.jsonl.1")  # rotated: the cursor's file is .1 now
    log.write_bytes(b"5\n")
    batch = read(log, 5, batch.cursor, limit=10)
    assert batch.lines == [b"3", b"4", b"5"] and not batch.lost and batch.behind == 0
    assert batch.cursor == (os.stat(log).st_ino, 2)


def test_limit_and_a_cursor_rotated_out(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    old = tmp_path / "events.jsonl.1"
    old.write_bytes(b"a\nb\n")
    log.write_bytes(b"c\n")
    first = read(log, 1, (0, 0), limit=1)  # (0, 0): from the oldest file
    assert first.lines == [b"a"] and first.behind == 4
    gone = read(log, 1, (123456789, 10), limit=10)
    assert gone.lost and gone.lines == [b"a", b"b", b"c"]


def test_cursor_file_and_signature(tmp_path: Path) -> None:
    state = tmp_path / "w.cursor"
    assert load_cursor(state) is None
    save_cursor(state, (7, 42))
    assert load_cursor(state) == (7, 42)
    log = tmp_path / "events.jsonl"
    assert start_cursor(log) == (0, 0)
    log.write_bytes(b"x\n")
    assert start_cursor(log) == (os.stat(log).st_ino, 2)
    # RFC 4231 test case 2
    assert signature(b"Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
