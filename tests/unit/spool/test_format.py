from __future__ import annotations

import pytest

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
    encode_message,
    encode_remove,
    encode_segment_header,
    encode_update,
    message_content,
    parse_record,
    reencode_message,
    scan_records,
)
from relay.spool.model import Envelope, Recipient, RecipientState


def _envelope() -> Envelope:
    return Envelope(
        message_id="m1",
        sender="",
        binding_group="g",
        binding="b",
        received_at=12.5,
        recipients=[
            Recipient("a@x", RecipientState.PENDING, 3, 99.0, "451 later"),
            Recipient("b@x", RecipientState.DELIVERED),
        ],
        size=5,
    )


def test_message_round_trip() -> None:
    record = encode_message(_envelope(), b"hello")
    parsed = parse_record(record, 0)
    assert parsed.kind is RecordKind.MESSAGE and parsed.length == len(record)
    envelope, start = decode_message(parsed.body)
    assert envelope == _envelope()
    assert message_content(parsed.body) == b"hello" == parsed.body[start:]


def test_reencode_keeps_content_and_changes_state() -> None:
    body = parse_record(encode_message(_envelope(), b"hello"), 0).body
    changed = _envelope()
    changed.recipients[0].attempts = 4
    again = parse_record(reencode_message(changed, body), 0).body
    assert decode_message(again)[0].recipients[0].attempts == 4
    assert message_content(again) == b"hello"


def test_update_and_remove_round_trip() -> None:
    update = parse_record(encode_update("m1", [(1, Recipient("b@x", RecipientState.FAILED))]), 0)
    message_id, rows = decode_update(update.body)
    assert message_id == "m1" and rows[0][0] == 1 and rows[0][1].state is RecipientState.FAILED
    assert decode_remove(parse_record(encode_remove("m9"), 0).body) == "m9"


def test_segment_header() -> None:
    assert check_segment_header(encode_segment_header(7)) == 7
    with pytest.raises(FormatError):
        check_segment_header(b"X" * SEGMENT_HEADER_SIZE)


@pytest.mark.parametrize("position", [0, 5, 13, 20, -6, -1])
def test_any_flipped_byte_is_detected(position: int) -> None:
    record = bytearray(encode_message(_envelope(), b"hello world"))
    record[position] ^= 0x40
    with pytest.raises(FormatError):
        parse_record(bytes(record), 0)


def _segment(*records: bytes) -> bytes:
    return encode_segment_header(1) + b"".join(records)


def test_scan_finds_corrupt_region_and_resyncs() -> None:
    a, b, c = (encode_remove(f"m{i}") for i in range(3))
    data = bytearray(_segment(a, b, c))
    data[SEGMENT_HEADER_SIZE + len(a) + 20] ^= 1  # inside b's body
    items = list(scan_records(bytes(data)))
    assert [type(i) for i in items] == [Record, CorruptRegion, Record]
    assert isinstance(items[1], CorruptRegion) and items[1].length == len(b)
    assert "checksum" in items[1].reason


def test_scan_reports_torn_tail() -> None:
    a, b = encode_remove("m0"), encode_remove("m1")
    items = list(scan_records(_segment(a, b[:-3])))
    assert isinstance(items[-1], TornTail) and items[-1].length == len(b) - 3
    items = list(scan_records(_segment(a) + b"\0" * 100))
    assert isinstance(items[-1], TornTail) and items[-1].reason == "zero-filled tail"


def test_scan_missing_end_marker_in_the_middle_is_corrupt() -> None:
    a, b, c = (encode_remove(f"m{i}") for i in range(3))
    items = list(scan_records(_segment(a, b[:-4], c)))
    assert [type(i) for i in items] == [Record, CorruptRegion, Record]
    assert isinstance(items[1], CorruptRegion) and items[1].reason == "missing end marker"
