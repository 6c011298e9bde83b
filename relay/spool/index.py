"""The in-memory table of spooled messages and of what each segment still holds.

Built by recovery, then changed by the store only after the matching record is durable.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import NamedTuple

from relay.spool.model import Envelope, Recipient, RecipientState

FINAL_STATES = frozenset({RecipientState.DELIVERED, RecipientState.FAILED})


class Location(NamedTuple):
    """Where a record lives: segment number, offset of its header, total length."""

    segment: int
    offset: int
    length: int


@dataclass(slots=True)
class Entry:
    """The spool's own copy of an envelope (never handed out) and where the message's
    current MESSAGE record is; the location's parts are kept flat (no tuple per message)."""

    envelope: Envelope
    segment: int
    offset: int
    length: int

    @property
    def location(self) -> Location:
        return Location(self.segment, self.offset, self.length)


@dataclass(slots=True)
class SegmentUsage:
    size: int
    live: set[str] = field(default_factory=set)  # messages whose current record is here
    live_bytes: int = 0


def copy_envelope(envelope: Envelope) -> Envelope:
    return Envelope(
        envelope.message_id,
        envelope.sender,
        envelope.binding_group,
        envelope.binding,
        envelope.received_at,
        [r.copy() for r in envelope.recipients],
        envelope.size,
        envelope.client,
        envelope.esmtp,
        envelope.tenant,
        envelope.campaign,
        envelope.priority,
    )


def all_final(envelope: Envelope) -> bool:
    return all(r.state in FINAL_STATES for r in envelope.recipients)


class SpoolIndex:
    def __init__(self) -> None:
        self.messages: dict[str, Entry] = {}
        self.segments: dict[int, SegmentUsage] = {}
        self.content_bytes = 0

    def get(self, message_id: str) -> Entry | None:
        return self.messages.get(message_id)

    def place(self, envelope: Envelope, location: Location) -> None:
        """Record that `envelope`'s current MESSAGE record is at `location` (new or moved)."""
        old = self.messages.get(envelope.message_id)
        if old is not None:
            self._unlink(envelope.message_id, old)
        self.messages[envelope.message_id] = Entry(envelope, *location)
        self.content_bytes += envelope.size
        usage = self.segments.setdefault(location.segment, SegmentUsage(size=0))
        usage.live.add(envelope.message_id)
        usage.live_bytes += location.length

    def move(self, message_id: str, location: Location) -> None:
        entry = self.messages.get(message_id)
        if entry is not None:
            self.place(entry.envelope, location)

    def forget(self, message_id: str) -> Entry | None:
        entry = self.messages.pop(message_id, None)
        if entry is not None:
            self._unlink(message_id, entry)
        return entry

    def _unlink(self, message_id: str, entry: Entry) -> None:
        self.content_bytes -= entry.envelope.size
        usage = self.segments.get(entry.segment)
        if usage is not None and message_id in usage.live:
            usage.live.discard(message_id)
            usage.live_bytes -= entry.length

    def apply_updates(self, message_id: str, updates: list[tuple[int, Recipient]]) -> bool | None:
        """Apply recipient outcomes; True if the message became final and was forgotten.

        None if the message is unknown (its record was removed or quarantined).
        """
        entry = self.messages.get(message_id)
        if entry is None:
            return None
        recipients = entry.envelope.recipients
        for index, update in updates:
            if 0 <= index < len(recipients):
                recipients[index] = update.copy(address=recipients[index].address)
        if all_final(entry.envelope):
            self.forget(message_id)
            return True
        return False

    def regroup(self, message_id: str, group: str) -> bool:
        """Move a message to another binding group (its explicit binding dropped); False
        if it is unknown."""
        entry = self.messages.get(message_id)
        if entry is None:
            return False
        entry.envelope.binding_group = sys.intern(group)
        entry.envelope.binding = None
        return True

    def sync_segments(self, sizes: dict[int, int]) -> None:
        """Adopt the segment log's view of which segments exist and how big they are."""
        for number in [n for n in self.segments if n not in sizes]:
            del self.segments[number]
        for number, size in sizes.items():
            self.segments.setdefault(number, SegmentUsage(size=0)).size = size
        self.segments = dict(sorted(self.segments.items()))
