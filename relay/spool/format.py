"""On-disk record encoding: pure functions, no I/O.

A segment file is a 16-byte segment header followed by records. Every record is::

    header  16 bytes  magic "RLR1" | kind u8 | 3 reserved | body length u32 | header crc32 u32
    body    n bytes
    trailer  8 bytes  body crc32 u32 | end marker "REND"

A record whose header checksum, body checksum or end marker is wrong is corrupt. A record
whose (valid) header announces more bytes than the file holds is a torn tail: an append that
was never acknowledged. Neither is a message.

Record bodies:
  MESSAGE  u32 envelope length | envelope JSON | content bytes
           (the JSON's "client": [ip, helo] is optional: older records have none)
           (the envelope JSON has an "esmtp" object only for a message given DSN, SMTPUTF8
           or REQUIRETLS parameters: {"ret", "envid", "utf8": 1, "rtls": 1, "notify": [...],
           "orcpt": [...]}, each key only when set, lists by recipient index; records
           written before it existed read back with no parameters)
           ("tenant", "campaign" and "priority" strings only when the message has them:
           older records and messages without them have none)
  UPDATE   JSON {"id": ..., "rcpt": [[index, state, attempts, next_attempt, last_response
                                    (, delay_notices when > 0)], ...]}
           (and "group": a new binding group, for an operator's rebind: older relays
           ignore the key)
  REMOVE   JSON {"id": ...}
"""

from __future__ import annotations

import enum
import json
import math
import struct
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from relay.esmtp import Esmtp
from relay.spool.model import Client, Envelope, Recipient, RecipientState

SEGMENT_MAGIC = b"RLYSPOOL"
SEGMENT_VERSION = 1
_SEGMENT_HEADER = struct.Struct("<8sII")  # magic, version, segment number
SEGMENT_HEADER_SIZE = _SEGMENT_HEADER.size

RECORD_MAGIC = b"RLR1"
END_MARKER = b"REND"
_HEADER = struct.Struct("<4sB3xII")  # magic, kind, body length, header crc
_HEADER_CRC_SPAN = 12  # the header bytes the header crc covers
_TRAILER = struct.Struct("<I4s")  # body crc, end marker
HEADER_SIZE = _HEADER.size
TRAILER_SIZE = _TRAILER.size
MAX_BODY = 1 << 31
_U32 = struct.Struct("<I")
_RESERVED = b"\0\0\0"


class RecordKind(enum.IntEnum):
    MESSAGE = 1
    UPDATE = 2
    REMOVE = 3


class FormatError(ValueError):
    """Bytes that are not a valid record; the message says why."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: RecordKind
    offset: int  # of the record's header within the segment
    length: int  # header + body + trailer
    body: bytes


@dataclass(frozen=True, slots=True)
class CorruptRegion:
    """Bytes [offset, offset + length) of a segment that hold no valid record."""

    offset: int
    length: int
    reason: str


@dataclass(frozen=True, slots=True)
class TornTail:
    """An incomplete last append from `offset` to the end of the segment."""

    offset: int
    length: int
    reason: str


ScanItem = Record | CorruptRegion | TornTail


# --- segment header ---------------------------------------------------------------------


def encode_segment_header(number: int) -> bytes:
    return _SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, number)


def check_segment_header(data: bytes) -> int:
    """Return the segment number stored in a segment header, or raise FormatError."""
    if len(data) < SEGMENT_HEADER_SIZE:
        raise FormatError("segment shorter than its header")
    magic, version, number = _SEGMENT_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        raise FormatError("not a spool segment (bad magic)")
    if version != SEGMENT_VERSION:
        raise FormatError(f"unsupported segment version {version}")
    return int(number)


# --- records ----------------------------------------------------------------------------


def encode_record(kind: RecordKind, body: bytes) -> bytes:
    if len(body) >= MAX_BODY:
        raise FormatError(f"record body of {len(body)} bytes is too large")
    head = _HEADER.pack(RECORD_MAGIC, kind, len(body), 0)[:_HEADER_CRC_SPAN]
    header = head + _U32.pack(zlib.crc32(head))
    return b"".join((header, body, _TRAILER.pack(zlib.crc32(body), END_MARKER)))


def _recipient_row(index: int | None, r: Recipient) -> list[object]:
    row: list[object] = [r.address] if index is None else [index]
    row += [r.state.value, r.attempts, r.next_attempt, r.last_response]
    if r.delay_notices:
        row.append(r.delay_notices)
    return row


# Built once: json.dumps with non-default arguments builds an encoder on every call.
_ENCODE_ASCII = json.JSONEncoder(separators=(",", ":")).encode


# The envelope is written for every message: formatted directly (strings escaped by the
# json module's own escaper), twice as fast as building and encoding a dict. It reads back
# as what json.dumps would have written (tests/unit/spool/test_format.py).
_STRING = json.encoder.encode_basestring  # the escaper of ensure_ascii=False


def _json_float(value: float) -> str:
    number = float(value)
    if math.isfinite(number):
        return repr(number)
    return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")


def _recipient_json(r: Recipient) -> str:
    notices = f",{int(r.delay_notices)}]" if r.delay_notices else "]"
    return (
        f"[{_STRING(r.address)},{_STRING(r.state.value)},{int(r.attempts)},"
        f"{_json_float(r.next_attempt)},{_STRING(r.last_response)}{notices}"
    )


def _envelope_json(envelope: Envelope) -> bytes:
    binding = "null" if envelope.binding is None else _STRING(envelope.binding)
    rows = ",".join([_recipient_json(r) for r in envelope.recipients])
    client = ""
    if envelope.client is not None:
        ip, helo = envelope.client
        client = f',"client":[{_STRING(ip)},{"null" if helo is None else _STRING(helo)}]'
    esmtp = "" if envelope.esmtp is None else _esmtp_json(envelope.esmtp)
    if envelope.tenant is not None:
        esmtp += f',"tenant":{_STRING(envelope.tenant)}'
    if envelope.campaign is not None:
        esmtp += f',"campaign":{_STRING(envelope.campaign)}'
    if envelope.priority is not None:
        esmtp += f',"priority":{_STRING(envelope.priority)}'
    return (
        f'{{"id":{_STRING(envelope.message_id)},"from":{_STRING(envelope.sender)},'
        f'"group":{_STRING(envelope.binding_group)},"binding":{binding},'
        f'"received_at":{_json_float(envelope.received_at)},"rcpt":[{rows}]{client}{esmtp}}}'
    ).encode()


def _esmtp_json(esmtp: Esmtp) -> str:
    """`,"esmtp":{...}` with only the parameters given (rare: not the bulk path)."""
    doc: dict[str, object] = {}
    if esmtp.ret is not None:
        doc["ret"] = esmtp.ret
    if esmtp.envid is not None:
        doc["envid"] = esmtp.envid
    if esmtp.smtputf8:
        doc["utf8"] = 1
    if esmtp.requiretls:
        doc["rtls"] = 1
    if esmtp.notify:
        doc["notify"] = list(esmtp.notify)
    if esmtp.orcpt:
        doc["orcpt"] = list(esmtp.orcpt)
    return ',"esmtp":' + json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _esmtp_from(doc: object) -> Esmtp:
    if not isinstance(doc, dict):
        raise FormatError(f"bad esmtp parameters {doc!r}")
    try:
        ret, envid = doc.get("ret"), doc.get("envid")
        notify, orcpt = doc.get("notify", []), doc.get("orcpt", [])
        return Esmtp(
            ret=None if ret is None else str(ret),
            envid=None if envid is None else str(envid),
            smtputf8=bool(doc.get("utf8")),
            requiretls=bool(doc.get("rtls")),
            notify=tuple(None if n is None else str(n) for n in notify),
            orcpt=tuple(None if o is None else str(o) for o in orcpt),
        )
    except TypeError as exc:
        raise FormatError(f"bad esmtp parameters {doc!r}: {exc}") from None


def encode_message(envelope: Envelope, content: bytes) -> bytes:
    meta = _envelope_json(envelope)
    return encode_record(RecordKind.MESSAGE, b"".join((_U32.pack(len(meta)), meta, content)))


def reencode_message(envelope: Envelope, old_body: bytes) -> bytes:
    """A MESSAGE record with a new envelope and the content of an existing MESSAGE body."""
    (meta_len,) = _U32.unpack_from(old_body, 0)
    content = memoryview(old_body)[_U32.size + meta_len :]
    meta = _envelope_json(envelope)
    return encode_record(RecordKind.MESSAGE, b"".join((_U32.pack(len(meta)), meta, content)))


def encode_update(message_id: str, updates: Sequence[tuple[int, Recipient]]) -> bytes:
    doc = {"id": message_id, "rcpt": [_recipient_row(i, r) for i, r in updates]}
    return encode_record(RecordKind.UPDATE, _ENCODE_ASCII(doc).encode())


def encode_regroup(message_id: str, group: str) -> bytes:
    """An UPDATE record that moves the message to binding group `group` (no binding)."""
    doc = {"id": message_id, "rcpt": [], "group": group}
    return encode_record(RecordKind.UPDATE, _ENCODE_ASCII(doc).encode())


def update_group(body: bytes) -> str | None:
    """The new binding group an UPDATE record carries, if any (cheap for those without)."""
    if b'"group":' not in body:
        return None
    group = _load_json(body).get("group")
    return None if group is None else str(group)


def encode_remove(message_id: str) -> bytes:
    return encode_record(RecordKind.REMOVE, _ENCODE_ASCII({"id": message_id}).encode())


def _load_json(data: bytes | memoryview) -> dict[str, object]:
    raw = bytes(data)
    try:
        doc = json.loads(raw)
        if b"\\u" in raw:  # an escape may make a lone surrogate, which no record can hold
            json.dumps(doc, ensure_ascii=False).encode()
    except (ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
        raise FormatError(f"bad JSON in record: {exc}") from None
    if not isinstance(doc, dict):
        raise FormatError("record JSON is not an object")
    return doc


def _recipient_from_row(row: object) -> tuple[object, Recipient]:
    if not isinstance(row, list) or len(row) not in (5, 6):
        raise FormatError(f"bad recipient row {row!r}")
    key, state, attempts, next_attempt, last_response = row[:5]
    notices = row[5] if len(row) == 6 else 0
    try:
        recipient = Recipient(
            address="",
            state=RecipientState(state),
            attempts=int(attempts),
            next_attempt=float(next_attempt),
            last_response=str(last_response),
            delay_notices=int(notices),
        )
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(Infinity)
        raise FormatError(f"bad recipient row {row!r}: {exc}") from None
    return key, recipient


def decode_message(body: bytes) -> tuple[Envelope, int]:
    """Decode a MESSAGE body into its envelope and the offset of the content in the body."""
    if len(body) < _U32.size:
        raise FormatError("message record too short")
    (meta_len,) = _U32.unpack_from(body, 0)
    start = _U32.size + meta_len
    if start > len(body):
        raise FormatError("message envelope overruns the record")
    doc = _load_json(memoryview(body)[_U32.size : start])
    rows = doc.get("rcpt")
    if not isinstance(rows, list):
        raise FormatError("message record without recipients")
    recipients = []
    for row in rows:
        address, recipient = _recipient_from_row(row)
        recipient.address = str(address)
        recipients.append(recipient)
    binding = doc.get("binding")
    received_at = doc.get("received_at")
    esmtp = doc.get("esmtp")  # only messages given DSN / SMTPUTF8 / REQUIRETLS parameters
    if not isinstance(received_at, (int, float)):
        raise FormatError("message record without reception time")
    try:
        received = float(received_at)
    except OverflowError:  # an integer of hundreds of digits
        raise FormatError(f"bad reception time {received_at}") from None
    envelope = Envelope(
        message_id=str(doc.get("id")),
        sender=sys.intern(str(doc.get("from"))),
        binding_group=sys.intern(str(doc.get("group"))),
        binding=None if binding is None else str(binding),
        received_at=received,
        recipients=recipients,
        size=len(body) - start,
        client=_client(doc.get("client")),
        esmtp=None if esmtp is None else _esmtp_from(esmtp),
        tenant=_label(doc.get("tenant"), "tenant"),
        campaign=_label(doc.get("campaign"), "campaign"),
        priority=_label(doc.get("priority"), "priority"),
    )
    return envelope, start


def _label(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FormatError(f"bad {name} {value!r}")
    return sys.intern(value)  # a few tenants and campaigns, many messages


def _client(value: object) -> Client | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], str)
        or not (value[1] is None or isinstance(value[1], str))
    ):
        raise FormatError(f"bad client {value!r}")
    return (sys.intern(value[0]), value[1])


def message_content(body: bytes) -> bytes:
    (meta_len,) = _U32.unpack_from(body, 0)
    return body[_U32.size + meta_len :]


def decode_update(body: bytes) -> tuple[str, list[tuple[int, Recipient]]]:
    doc = _load_json(body)
    rows = doc.get("rcpt")
    if not isinstance(rows, list):
        raise FormatError("update record without recipients")
    updates = []
    for row in rows:
        index, recipient = _recipient_from_row(row)
        if not isinstance(index, int):
            raise FormatError(f"bad recipient index {index!r}")
        updates.append((index, recipient))
    return str(doc.get("id")), updates


def decode_remove(body: bytes) -> str:
    return str(_load_json(body).get("id"))


def parse_record(data: bytes | memoryview, offset: int) -> Record:
    """Parse the record at `offset`; raise FormatError (or TornRecord) if there is none."""
    end = len(data)
    if end - offset < HEADER_SIZE:
        raise TornRecord(f"{end - offset} bytes left, shorter than a record header")
    magic, kind, body_len, header_crc = _HEADER.unpack_from(data, offset)
    if magic != RECORD_MAGIC:
        raise FormatError("bad record magic")
    if zlib.crc32(data[offset : offset + _HEADER_CRC_SPAN]) != header_crc:
        raise FormatError("header checksum mismatch")
    if data[offset + 5 : offset + 8] != _RESERVED:
        raise FormatError("reserved header bytes not zero")  # relay writes zeros only
    try:
        record_kind = RecordKind(kind)
    except ValueError:
        raise FormatError(f"unknown record kind {kind}") from None
    body_start = offset + HEADER_SIZE
    body_end = body_start + body_len
    total = HEADER_SIZE + body_len + TRAILER_SIZE
    if body_end + TRAILER_SIZE > end:
        raise TornRecord(f"record of {total} bytes but only {end - offset} left")
    body_crc, marker = _TRAILER.unpack_from(data, body_end)
    if marker != END_MARKER:
        raise FormatError("missing end marker")
    body = bytes(data[body_start:body_end])
    if zlib.crc32(body) != body_crc:
        raise FormatError("body checksum mismatch")
    return Record(record_kind, offset, total, body)


class TornRecord(FormatError):
    """The record is cut short by the end of the data."""


def logical_end(data: bytes, start: int = SEGMENT_HEADER_SIZE) -> int:
    """Where the log in a segment's bytes ends: just past the last byte that is not zero
    (every record ends with its end marker), `start` at the least. Only zeros follow:
    space the log wrote ahead of its records (segments.PREALLOCATE), or a tail whose data
    never reached the disk; no acknowledged record is ever there."""
    end = len(data)
    floor = min(start, end)
    while end > floor:
        lower = max(floor, end - 65536)
        kept = len(data[lower:end].rstrip(b"\0"))
        if kept:
            return lower + kept
        end = lower
    return floor


def scan_records(data: bytes, start: int = SEGMENT_HEADER_SIZE) -> Iterator[ScanItem]:
    """Every record of a segment in order, plus the corrupt regions and torn tail between
    them, up to the segment's logical end (the zeros after it are no part of the log).

    After a corrupt record the scan resynchronises on the next offset holding a valid record.
    """
    offset = start
    end = logical_end(data, start)
    view = memoryview(data)[:end]
    while offset < end:
        try:
            record = parse_record(view, offset)
        except TornRecord as exc:
            resume = _next_valid(view, offset + 1)
            if resume is None:
                yield TornTail(offset, end - offset, str(exc))
                return
            yield CorruptRegion(offset, resume - offset, str(exc))
            offset = resume
            continue
        except FormatError as exc:
            resume = _next_valid(view, offset + 1)
            stop = end if resume is None else resume
            yield CorruptRegion(offset, stop - offset, str(exc))
            offset = stop
            continue
        yield record
        offset += record.length


def _next_valid(view: memoryview, offset: int) -> int | None:
    data = view.obj
    assert isinstance(data, bytes)
    while True:
        found = data.find(RECORD_MAGIC, offset, len(view))
        if found < 0:
            return None
        try:
            parse_record(view, found)
        except FormatError:
            offset = found + 1
            continue
        return found
