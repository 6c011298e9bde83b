"""A snapshot of what the spool holds and has done, for the admin API and the tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class SpoolStatistics:
    messages: int  # in the spool now
    bytes: int  # content bytes of those messages
    disk_bytes: int  # size of all segment files
    segments: int
    resident_bodies: int  # bodies held in RAM (<= max_resident_messages)
    resident_bytes: int
    stored: int  # since open
    removed: int  # since open: by remove() or because every recipient became final
    updates: int  # update_recipients calls journaled since open
    commit_batches: int  # durable writes (one write + one fsync each) since open
    committed_records: int
    largest_batch: int
    failed_batches: int
    fsyncs: int  # synchronous (O_DSYNC) appends to segments (0 with fsync=False)
    compacted: int  # messages copied forward out of old segments
    segments_deleted: int
    recovered: int  # messages found at open
    quarantined: int  # files or regions moved to quarantine/ at open
    partial_discarded: int  # torn tails and temporary files removed at open


def combine(parts: Iterable[SpoolStatistics]) -> SpoolStatistics:
    """Several spools (the daemon's and its injection workers' shards) as one: counts
    summed, the largest batch the largest of any."""
    parts = list(parts)
    totals = {
        f.name: (max if f.name == "largest_batch" else sum)(getattr(p, f.name) for p in parts)
        for f in fields(SpoolStatistics)
    }
    return SpoolStatistics(**totals)
