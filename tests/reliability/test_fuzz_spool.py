"""Fuzz the spool record format (relay/spool/format.py) with hypothesis: records
round-trip, and nothing decodes to a record that re-encodes differently (fuzz_targets)."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.esmtp import Esmtp
from relay.spool import format as fmt
from relay.spool.model import Envelope, Recipient, RecipientState
from tests.reliability.fuzz_targets import same_envelope, spool_body, spool_record

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOAK = settings(max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))

text = st.text(max_size=12)
optional = st.none() | text
floats = st.floats(allow_nan=True, allow_infinity=True)
recipients = st.builds(
    Recipient,
    address=text,
    state=st.sampled_from(list(RecipientState)),
    attempts=st.integers(min_value=0, max_value=10**9),
    next_attempt=floats,
    last_response=text,
    delay_notices=st.integers(min_value=0, max_value=100),
)
esmtp = st.builds(
    Esmtp,
    ret=st.sampled_from([None, "FULL", "HDRS"]),
    envid=optional,
    smtputf8=st.booleans(),
    requiretls=st.booleans(),
    notify=st.lists(optional, max_size=3).map(tuple),
    orcpt=st.lists(optional, max_size=3).map(tuple),
)
envelopes = st.builds(
    Envelope,
    message_id=text,
    sender=text,
    binding_group=text,
    binding=optional,
    received_at=floats,
    recipients=st.lists(recipients, max_size=4),
    size=st.just(0),
    client=st.none() | st.tuples(text, optional),
    esmtp=st.none() | esmtp,
    tenant=optional,
    campaign=optional,
    priority=optional,
)


@FAST
@given(envelopes, st.binary(max_size=64))
def test_message_records_round_trip(envelope: Envelope, content: bytes) -> None:
    envelope.size = len(content)
    record = fmt.encode_message(envelope, content)
    parsed = fmt.parse_record(record, 0)
    decoded, start = fmt.decode_message(parsed.body)
    assert parsed.body[start:] == content
    assert same_envelope(decoded, envelope)
    assert fmt.encode_message(decoded, content) == record


@FAST
@given(text, st.lists(st.tuples(st.integers(0, 1000), recipients), max_size=4))
def test_update_records_round_trip(message_id: str, updates: list[tuple[int, Recipient]]) -> None:
    for _, recipient in updates:
        recipient.address = ""  # an update row carries the index, not the address
    record = fmt.encode_update(message_id, updates)
    decoded_id, decoded = fmt.decode_update(fmt.parse_record(record, 0).body)
    assert decoded_id == message_id
    assert fmt.encode_update(decoded_id, decoded) == record


# JSON documents shaped like the record bodies, with any value anywhere.
any_text = st.text(st.characters(categories=["Cs", "Cc", "Ll", "Lo", "Nd", "Po"]), max_size=6)
edges = st.sampled_from([float("inf"), float("-inf"), float("nan"), -0.0, 1e308, 10**400, -1])
scalars = st.none() | st.booleans() | st.integers() | st.floats() | edges | any_text
json_values = (
    scalars
    | st.lists(scalars, max_size=3)
    | st.dictionaries(st.text(max_size=4), scalars, max_size=2)
)
row = st.lists(scalars, min_size=5, max_size=6) | st.tuples(
    st.text(max_size=4) | st.integers(),
    st.sampled_from(["pending", "delivered", "failed", "bogus"]),
    scalars,
    scalars,
    scalars,
).map(list)
docs = st.fixed_dictionaries(
    {"rcpt": st.lists(row, max_size=3), "received_at": scalars},
    optional={
        name: json_values
        for name in ("id", "from", "group", "binding", "client", "esmtp", "tenant", "priority")
    },
)


def message_body(doc: object, content: bytes) -> bytes:
    meta = json.dumps(doc).encode()
    return struct.pack("<I", len(meta)) + meta + content


@FAST
@given(docs, st.binary(max_size=16))
def test_message_bodies_decode_to_a_fixed_point(doc: object, content: bytes) -> None:
    spool_body(fmt.RecordKind.MESSAGE, message_body(doc, content))


@FAST
@given(docs | st.dictionaries(st.sampled_from(["id", "rcpt", "group"]), json_values))
def test_update_and_remove_bodies_decode_to_a_fixed_point(doc: object) -> None:
    body = json.dumps(doc).encode()
    spool_body(fmt.RecordKind.UPDATE, body)
    spool_body(fmt.RecordKind.REMOVE, body)


def framed(kind: int, reserved: bytes, body: bytes) -> bytes:
    """A record with a valid header checksum, whatever its fields."""
    head = struct.pack("<4sB3sI", b"RLR1", kind, reserved, len(body))
    return (
        head
        + struct.pack("<I", zlib.crc32(head))
        + body
        + struct.pack("<I4s", zlib.crc32(body), b"REND")
    )


records = st.builds(
    framed,
    st.integers(0, 255) | st.sampled_from([1, 2, 3]),
    st.sampled_from([b"\0\0\0", b"\0\0\1", b"xyz"]),
    st.binary(max_size=40) | docs.map(lambda d: message_body(d, b"c")),
)


@FAST
@given(st.lists(records | st.binary(max_size=30), max_size=5).map(b"".join))
def test_any_bytes_parse_and_scan(data: bytes) -> None:
    spool_record(data)


@pytest.mark.soak
@SOAK
@given(docs, st.binary(max_size=16))
def test_message_bodies_decode_to_a_fixed_point_soak(doc: object, content: bytes) -> None:
    spool_body(fmt.RecordKind.MESSAGE, message_body(doc, content))


@pytest.mark.soak
@SOAK
@given(st.lists(records | st.binary(max_size=30), max_size=5).map(b"".join))
def test_any_bytes_parse_and_scan_soak(data: bytes) -> None:
    spool_record(data)


# --- regressions (found by these tests or while writing them) ----------------------------------


def test_nonzero_reserved_header_bytes_are_not_a_record() -> None:
    """They were ignored: the record re-encoded with zeros, not as it was."""
    with pytest.raises(fmt.FormatError, match="reserved"):
        fmt.parse_record(framed(1, b"\0\0\1", b"x"), 0)
    assert fmt.parse_record(framed(1, b"\0\0\0", b"x"), 0).body == b"x"


def test_a_lone_surrogate_is_not_a_record() -> None:
    """It decoded, and then relay could not write the envelope again (UnicodeEncodeError
    on the next update of the message)."""
    meta = {"id": "m", "from": "\ud800", "group": "g", "binding": None, "received_at": 1.0}
    with pytest.raises(fmt.FormatError, match="bad JSON"):
        fmt.decode_message(message_body({**meta, "rcpt": []}, b"c"))
    with pytest.raises(fmt.FormatError):
        fmt.decode_update(json.dumps({"id": "\udfff", "rcpt": []}).encode())
    ok = {**meta, "from": "\u00e9\u0001", "rcpt": []}  # other escapes are fine
    assert fmt.decode_message(message_body(ok, b"c"))[0].sender == "\xe9\x01"


def test_deeply_nested_json_is_a_format_error() -> None:
    """RecursionError escaped the decoder (recovery would have stopped on the record)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(fmt.FormatError):
        fmt.decode_update(deep)
    with pytest.raises(fmt.FormatError):
        fmt.decode_message(struct.pack("<I", len(deep)) + deep)


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "1" + "0" * 400])
def test_out_of_range_numbers_are_format_errors(value: str) -> None:
    """int(Infinity) and float(10**400) raised OverflowError out of the decoder."""
    if "Infinity" in value:  # as attempts (a huge integer is one)
        with pytest.raises(fmt.FormatError):
            fmt.decode_update(f'{{"id":"m","rcpt":[[0,"pending",{value},0,""]]}}'.encode())
    with pytest.raises(fmt.FormatError):
        fmt.decode_update(f'{{"id":"m","rcpt":[[0,"pending",1,{value},"",{value}]]}}'.encode())
    meta = f'{{"id":"m","from":"","group":"g","received_at":{value},"rcpt":[]}}'.encode()
    if value.startswith("1"):
        with pytest.raises(fmt.FormatError):
            fmt.decode_message(struct.pack("<I", len(meta)) + meta)
