"""Start-up: make the spool directory consistent and rebuild the index from the segments.

- temporary files (`*.tmp`: a segment being created when the process died) are removed;
- a torn tail (an append cut short by a crash, never acknowledged) is cut off its segment,
  its bytes kept in `quarantine/` as `<segment>@<offset>.torn` (counted as discarded, not
  as quarantined); the zeros after the last record (written ahead of the records, or never
  reached by a write: format.logical_end) are cut off without a word;
- a corrupt record, or a file that is not a segment, is moved to `quarantine/` with a
  `.reason` file beside it and logged; the segment is rewritten without it;
- every other record is replayed in log order: MESSAGE places (or replaces) a message,
  UPDATE applies recipient outcomes, REMOVE forgets; a message whose recipients are all
  final is forgotten.
Runs synchronously on the spool's commit thread.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from relay.spool.fileops import FileOps
from relay.spool.format import (
    SEGMENT_HEADER_SIZE,
    CorruptRegion,
    FormatError,
    Record,
    RecordKind,
    TornTail,
    check_segment_header,
    decode_message,
    decode_remove,
    decode_update,
    logical_end,
    scan_records,
    update_group,
)
from relay.spool.index import Location, SpoolIndex, all_final
from relay.spool.segments import DEAD_SUFFIX, TEMP_SUFFIX, segment_name, segment_number

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"


@dataclass(slots=True)
class RecoveryReport:
    temp_removed: list[str] = field(default_factory=list)
    torn_tails: list[str] = field(default_factory=list)  # "segment@offset: reason"
    quarantined: list[str] = field(default_factory=list)  # paths under quarantine/
    segments: int = 0
    records: int = 0


@dataclass(slots=True)
class Recovered:
    index: SpoolIndex
    sizes: dict[int, int]
    next_segment: int
    report: RecoveryReport


def recover(directory: str, ops: FileOps, *, fsync: bool) -> Recovered:
    quarantine = os.path.join(directory, QUARANTINE)
    os.makedirs(quarantine, exist_ok=True)
    report = RecoveryReport()
    numbers: list[int] = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith((TEMP_SUFFIX, DEAD_SUFFIX)):  # half written, or being deleted
            ops.unlink(path)
            report.temp_removed.append(name)
            log.info("spool: removed temporary file %s", path)
            continue
        number = segment_number(name)
        if number is not None:
            numbers.append(number)
    numbers.sort()

    index = SpoolIndex()
    sizes: dict[int, int] = {}
    changed_directory = bool(report.temp_removed)
    for number in numbers:
        path = os.path.join(directory, segment_name(number))
        with open(path, "rb") as f:
            data = f.read()
        try:
            stored = check_segment_header(data)
            if stored != number:
                raise FormatError(f"segment header says {stored}, file name says {number}")
        except FormatError as exc:
            target = _quarantine_file(quarantine, path, str(exc), ops)
            report.quarantined.append(target)
            changed_directory = True
            continue
        records, size, rewritten = _clean_segment(
            path, number, data, quarantine, report, ops, fsync=fsync
        )
        changed_directory |= rewritten
        report.segments += 1
        sizes[number] = size
        for record in records:
            report.records += 1
            _replay(index, number, record, path)
    if changed_directory and fsync:
        ops.fsync_directory(directory)
    index.sync_segments(sizes)
    for entry in list(index.messages.values()):
        if all_final(entry.envelope):  # e.g. a REMOVE that was quarantined
            index.forget(entry.envelope.message_id)
    next_segment = (numbers[-1] + 1) if numbers else 1
    return Recovered(index, sizes, next_segment, report)


def _clean_segment(
    path: str,
    number: int,
    data: bytes,
    quarantine: str,
    report: RecoveryReport,
    ops: FileOps,
    *,
    fsync: bool,
) -> tuple[list[Record], int, bool]:
    """Valid records of a segment (offsets as they are on disk afterwards), its size, and
    whether the segment file was rewritten."""
    records: list[Record] = []
    corrupt = False
    torn: TornTail | None = None
    for item in scan_records(data):
        if isinstance(item, Record):
            records.append(item)
        elif isinstance(item, CorruptRegion):
            corrupt = True
            target = _unique(os.path.join(quarantine, f"{segment_name(number)}@{item.offset}.bad"))
            _write_file(target, data[item.offset : item.offset + item.length])
            _write_file(target + ".reason", f"{path} offset {item.offset}: {item.reason}\n")
            report.quarantined.append(target)
            log.error(
                "spool: quarantined %d corrupt bytes of %s at offset %d (%s) as %s",
                item.length,
                path,
                item.offset,
                item.reason,
                target,
            )
        else:
            torn = item
            report.torn_tails.append(f"{segment_name(number)}@{item.offset}: {item.reason}")
            # Almost always an append the crash cut short (never acknowledged); the bytes
            # are kept beside the quarantine all the same, in case they were not.
            target = _unique(os.path.join(quarantine, f"{segment_name(number)}@{item.offset}.torn"))
            _write_file(target, data[item.offset : item.offset + item.length])
            _write_file(target + ".reason", f"{path} offset {item.offset}: {item.reason}\n")
            log.warning(
                "spool: cut an unacknowledged partial append of %d bytes at the end of "
                "%s (offset %d: %s); the bytes are kept as %s",
                item.length,
                path,
                item.offset,
                item.reason,
                target,
            )
    if corrupt:
        return _rewrite_segment(path, data, records, ops, fsync=fsync)
    # The log ends at a torn append, else at its last non-zero byte (zeros written ahead).
    end = torn.offset if torn is not None else logical_end(data)
    if end < len(data):
        fd = ops.open(path, os.O_RDWR)
        try:
            ops.ftruncate(fd, end)
            if fsync:
                ops.fsync(fd)
        finally:
            ops.close(fd)
    return records, end, False


def _rewrite_segment(
    path: str, data: bytes, records: list[Record], ops: FileOps, *, fsync: bool
) -> tuple[list[Record], int, bool]:
    parts = [data[:SEGMENT_HEADER_SIZE]]
    moved: list[Record] = []
    offset = SEGMENT_HEADER_SIZE
    for record in records:
        parts.append(data[record.offset : record.offset + record.length])
        moved.append(Record(record.kind, offset, record.length, record.body))
        offset += record.length
    temp = path + TEMP_SUFFIX
    fd = ops.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        ops.pwrite(fd, b"".join(parts), 0)
        if fsync:
            ops.fsync(fd)
    finally:
        ops.close(fd)
    ops.rename(temp, path)
    return moved, offset, True


def _replay(index: SpoolIndex, number: int, record: Record, path: str) -> None:
    try:
        if record.kind is RecordKind.MESSAGE:
            envelope, _ = decode_message(record.body)
            index.place(envelope, Location(number, record.offset, record.length))
        elif record.kind is RecordKind.UPDATE:
            message_id, updates = decode_update(record.body)
            group = update_group(record.body)
            if group is not None:
                index.regroup(message_id, group)
            index.apply_updates(message_id, updates)
        else:
            index.forget(decode_remove(record.body))
    except FormatError as exc:  # checksummed but undecodable: a bug, not bit rot
        log.error("spool: cannot replay record at %s offset %d: %s", path, record.offset, exc)


def _quarantine_file(quarantine: str, path: str, reason: str, ops: FileOps) -> str:
    target = _unique(os.path.join(quarantine, os.path.basename(path)))
    ops.rename(path, target)
    _write_file(target + ".reason", f"{path}: {reason}\n")
    log.error("spool: quarantined %s (%s) as %s", path, reason, target)
    return target


def _unique(path: str) -> str:
    candidate, n = path, 0
    while os.path.exists(candidate):
        n += 1
        candidate = f"{path}.{n}"
    return candidate


def _write_file(path: str, data: bytes | str) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)
