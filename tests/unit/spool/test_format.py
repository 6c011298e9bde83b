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
    logical_end,
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


def test_zeros_after_the_last_record_are_no_part_of_the_log() -> None:
    """The log writes zeros ahead of its records (segments.PREALLOCATE); a crash leaves
    them after the last record, or after a torn one, or after the header alone."""
    a, b = encode_remove("m0"), encode_remove("m1")
    zeros = b"\0" * 70_000  # more than one of logical_end's steps
    assert list(scan_records(_segment(a, b) + zeros)) == list(scan_records(_segment(a, b)))
    assert logical_end(_segment(a, b) + zeros) == len(_segment(a, b))
    items = list(scan_records(_segment(a, b[:-7]) + zeros))
    assert isinstance(items[-1], TornTail) and items[-1].length == len(b) - 7
    assert list(scan_records(_segment() + zeros)) == []
    assert logical_end(_segment() + zeros) == SEGMENT_HEADER_SIZE  # the header ends in zeros


def test_scan_missing_end_marker_in_the_middle_is_corrupt() -> None:
    a, b, c = (encode_remove(f"m{i}") for i in range(3))
    items = list(scan_records(_segment(a, b[:-4], c)))
    assert [type(i) for i in items] == [Record, CorruptRegion, Record]
    assert isinstance(items[1], CorruptRegion) and items[1].reason == "missing end marker"


def test_envelope_json_reads_back_as_json_dumps_writes_it() -> None:
    """The hand-formatted envelope: same text as json.dumps for ordinary values, and the
    same document for awkward ones (quotes, control and non-ASCII characters, odd floats)."""
    import json
    import math

    from relay.spool.format import _envelope_json, _recipient_row

    def dumps(e: Envelope) -> bytes:
        doc = {
            "id": e.message_id,
            "from": e.sender,
            "group": e.binding_group,
            "binding": e.binding,
            "received_at": e.received_at,
            "rcpt": [_recipient_row(None, r) for r in e.recipients],
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    plain = Envelope("0195f3c2a1b0", "bulk@example.com", "default", None, 1_700_000_000.123)
    plain.recipients = [Recipient("a@example.com"), Recipient("b@example.org")]
    assert _envelope_json(plain) == dumps(plain)
    odd = Envelope('i"d', 'q"u\\o\te\x01\u00e9\u2603@x', "gr\u00fcn", "b\n1", -0.0)
    odd.recipients = [
        Recipient("\u00fc@\u00e9.example", RecipientState.FAILED, 7, 1e300, 'said "no"\r\n', 3),
        Recipient("z@x", RecipientState.DELIVERED, 1, 5e-324, "", 0),
    ]
    assert _envelope_json(odd) == dumps(odd)
    for special in (math.inf, -math.inf):
        e = Envelope("m", "", "g", None, special, [Recipient("r@x", next_attempt=special)])
        assert _envelope_json(e) == dumps(e)
    nan = Envelope("m", "", "g", None, math.nan, [Recipient("r@x")])
    assert (
        json.loads(_envelope_json(nan))["received_at"]
        != json.loads(_envelope_json(nan))["received_at"]
    )  # NaN, as json.dumps writes it


def test_the_client_round_trips_and_older_records_without_it_load() -> None:
    import dataclasses

    with_client = dataclasses.replace(_envelope(), client=("192.0.2.7", "c.example"))
    body = parse_record(encode_message(with_client, b"hi"), 0).body
    assert decode_message(body)[0].client == ("192.0.2.7", "c.example")
    no_helo = dataclasses.replace(_envelope(), client=("2001:db8::1", None))
    body = parse_record(encode_message(no_helo, b"hi"), 0).body
    assert decode_message(body)[0].client == ("2001:db8::1", None)
    # a record as relay wrote it before clients were kept: no "client" key
    old = parse_record(encode_message(_envelope(), b"hi"), 0).body
    assert b'"client"' not in old
    assert decode_message(old)[0].client is None


def test_a_bad_client_is_a_format_error() -> None:
    import json
    import struct

    meta = json.dumps(
        {
            "id": "m",
            "from": "",
            "group": "g",
            "binding": None,
            "received_at": 1.0,
            "rcpt": [["a@x", "pending", 0, 0.0, ""]],
            "client": ["only-one"],
        }
    ).encode()
    body = struct.pack("<I", len(meta)) + meta + b"x"
    with pytest.raises(FormatError, match="bad client"):
        decode_message(body)


def test_esmtp_parameters_round_trip() -> None:
    from relay.esmtp import Esmtp

    envelope = _envelope()
    envelope.esmtp = Esmtp(
        ret="HDRS",
        envid="QQ+2Bid",
        smtputf8=True,
        requiretls=True,
        notify=("SUCCESS,FAILURE", None),
        orcpt=("rfc822;a+40x", None),
    )
    body = parse_record(encode_message(envelope, b"hello"), 0).body
    assert decode_message(body)[0] == envelope
    # reencoding (a state change) keeps them
    assert decode_message(parse_record(reencode_message(envelope, body), 0).body)[0] == envelope


def test_a_record_written_before_esmtp_parameters_still_loads() -> None:
    # A MESSAGE body exactly as relay wrote it before the "esmtp" key existed.
    meta = (
        b'{"id":"m1","from":"","group":"g","binding":"b","received_at":12.5,'
        b'"rcpt":[["a@x","pending",3,99.0,"451 later"],["b@x","delivered",0,0.0,""]]}'
    )
    body = len(meta).to_bytes(4, "little") + meta + b"hello"
    envelope, start = decode_message(body)
    assert envelope == _envelope() and envelope.esmtp is None
    assert body[start:] == b"hello"


def test_bad_esmtp_parameters_are_a_format_error() -> None:
    meta = b'{"id":"m1","from":"","group":"g","binding":null,"received_at":1,"rcpt":[],"esmtp":3}'
    with pytest.raises(FormatError, match="esmtp"):
        decode_message(len(meta).to_bytes(4, "little") + meta)


def test_tenant_and_campaign_round_trip_and_older_records_load() -> None:
    envelope = _envelope()
    envelope.tenant, envelope.campaign = "acme", 'black "friday" ü'
    body = parse_record(encode_message(envelope, b"hello"), 0).body
    assert decode_message(body)[0] == envelope
    assert decode_message(parse_record(reencode_message(envelope, body), 0).body)[0] == envelope
    only_tenant = _envelope()
    only_tenant.tenant = "acme"
    body = parse_record(encode_message(only_tenant, b"x"), 0).body
    assert b'"campaign"' not in body and decode_message(body)[0].campaign is None
    plain = parse_record(encode_message(_envelope(), b"x"), 0).body
    assert b'"tenant"' not in plain  # nothing written for messages without them
    assert decode_message(plain)[0].tenant is None
    meta = b'{"id":"m","from":"","group":"g","binding":null,"received_at":1,"rcpt":[],"tenant":3}'
    with pytest.raises(FormatError, match="bad tenant"):
        decode_message(len(meta).to_bytes(4, "little") + meta)


def test_a_regroup_is_an_update_record_older_readers_can_skip() -> None:
    from relay.spool.format import encode_regroup, update_group

    record = parse_record(encode_regroup("m1", "other"), 0)
    assert record.kind is RecordKind.UPDATE
    assert decode_update(record.body) == ("m1", [])  # what an older relay reads: no change
    assert update_group(record.body) == "other"
    plain = parse_record(encode_update("m1", [(0, Recipient("a@x"))]), 0)
    assert update_group(plain.body) is None


def test_priority_round_trips_and_is_written_only_when_set() -> None:
    envelope = _envelope()
    envelope.priority = "transactional"
    body = parse_record(encode_message(envelope, b"hello"), 0).body
    assert decode_message(body)[0] == envelope
    plain = parse_record(encode_message(_envelope(), b"x"), 0).body
    assert b'"priority"' not in plain and decode_message(plain)[0].priority is None
