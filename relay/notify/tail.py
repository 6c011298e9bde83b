"""Reading the event log from a durable cursor, across rotations (file I/O: call it from a
thread).

A cursor is (inode, offset) of a file of the log: NAME, or NAME.1 ... NAME.keep after
rotations (relay/dispose/events.py). Reading goes on from the cursor's file; at its end,
to the next newer file. A cursor whose file has been rotated out starts again at the
oldest file there is (`lost` says so). Only complete lines are read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

Cursor = tuple[int, int]  # (inode, offset); (0, 0): from the oldest file


@dataclass(frozen=True, slots=True)
class Batch:
    lines: list[bytes]  # complete lines, newline removed
    cursor: Cursor  # after them
    lost: bool  # the cursor's file was gone: lines between may be missing
    behind: int  # bytes left after `cursor` (the lag)


def files(path: Path, keep: int) -> list[tuple[int, Path]]:
    """(inode, path) of the log's files, oldest first."""
    found: list[tuple[int, Path]] = []
    for candidate in [Path(f"{path}.{n}") for n in range(keep, 0, -1)] + [path]:
        try:
            found.append((os.stat(candidate).st_ino, candidate))
        except FileNotFoundError:
            continue
    return found


def read(path: Path, keep: int, cursor: Cursor, limit: int) -> Batch:
    """Up to `limit` lines after `cursor`."""
    chain = files(path, keep)
    inodes = [inode for inode, _ in chain]
    lost = False
    if cursor[0] in inodes:
        index, offset = inodes.index(cursor[0]), cursor[1]
    else:
        lost = cursor != (0, 0) and bool(chain)
        index, offset = 0, 0
    lines: list[bytes] = []
    position = cursor if not lost else (inodes[0] if chain else 0, 0)
    while index < len(chain) and len(lines) < limit:
        inode, name = chain[index]
        with open(name, "rb") as f:
            f.seek(offset)
            while len(lines) < limit:
                line = f.readline()
                if not line.endswith(b"\n"):
                    break  # the end, or a line still being written
                offset += len(line)
                if line.strip():
                    lines.append(line.rstrip(b"\n"))
        position = (inode, offset)
        if len(lines) >= limit or index == len(chain) - 1:
            break
        index, offset = index + 1, 0
        position = (chain[index][0], 0)
    behind = 0
    if chain:
        at = inodes.index(position[0]) if position[0] in inodes else 0
        for n, (_, name) in enumerate(chain[at:]):
            size = os.stat(name).st_size
            behind += size - position[1] if n == 0 else size
    return Batch(lines, position, lost, max(0, behind))
