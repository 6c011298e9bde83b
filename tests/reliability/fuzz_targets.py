"""The fuzz properties as plain functions of their input, shared by the hypothesis tests
(test_fuzz_*.py) and the atheris runs (atheris_fuzz.py): each raises AssertionError (or
lets an unintended exception out) when relay misbehaves.

- `smtp_session`: the SMTP state machine (relay/inject/protocol.py) fed any bytes in any
  split never raises, says only well-formed printable replies, and does not decide
  differently when the same bytes come split otherwise;
- `data_stream`: DataReader (relay/inject/data.py) on any bytes never raises, keeps no
  more than the size limit, and ends exactly at the first <CRLF>.<CRLF>;
- `config_text`: the configuration (relay/config, then relay/wiring) of any text raises
  nothing but ConfigError;
- `spool_record` / `spool_body`: the record decoder (relay/spool/format.py) of any bytes
  raises nothing but FormatError, and what it decodes re-encodes to a fixed point.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import math
import re
from collections.abc import Sequence

from relay.config import ConfigError, loads
from relay.inject import replies
from relay.inject.data import DataReader
from relay.inject.protocol import (
    CheckCredentials,
    Close,
    MessageComplete,
    MessageRefused,
    Session,
    StartTLS,
)
from relay.inject.settings import InjectSettings, IPNetwork, ListenerSettings, parse_network
from relay.spool import format as fmt
from relay.spool.model import Envelope
from relay.wiring import compile_settings

# --- the SMTP state machine --------------------------------------------------------------

REPLY_LINE = re.compile(rb"[2-5][0-9][0-9][ -][\x20-\x7e]*")
INSIDE = ipaddress.ip_address("10.0.0.1")


@dataclasses.dataclass
class Rules:
    settings: InjectSettings
    relay_hosts: tuple[IPNetwork, ...]

    def suppressed(self, client: object, address: str) -> str | None:
        return replies.suppressed(address) if address.startswith("suppressed") else None


def _rules(max_size: int) -> Rules:
    settings = InjectSettings(
        listeners=(ListenerSettings("127.0.0.1:0"),),
        hostname="relay.test",
        max_message_size=max_size,
        max_recipients=3,
    )
    return Rules(settings, (parse_network("10.0.0.0/8"),))


def converse(chunks: Sequence[bytes], max_size: int) -> tuple[list[bytes], list[object]]:
    """Feed the chunks as a driver would (a message is queued, the password "secret" is
    right, TLS always comes up); the reply lines and the events, in order."""
    machine = Session(
        _rules(max_size),
        hostname="relay.test",
        client=INSIDE,
        tls_available=True,
        mechanisms=("PLAIN", "LOGIN"),
    )
    out = [machine.take_output()]
    events: list[object] = []
    for chunk in chunks:
        event = machine.receive(chunk)
        while event is not None:
            if isinstance(event, MessageComplete):
                events.append(("message", event.sender, event.recipients, event.content))
                machine.message_done(replies.QUEUED.format(id=f"m{len(events)}"))
            elif isinstance(event, MessageRefused):
                events.append(("refused", event.reply[:1]))
                machine.message_done(event.reply)
            elif isinstance(event, CheckCredentials):
                events.append(("auth", event.login, event.password))
                machine.credentials_checked(event.password == b"secret", "user")
            elif isinstance(event, StartTLS):
                events.append(("tls",))
                machine.tls_started()
            else:
                assert isinstance(event, Close)
                events.append(("close",))
                out.append(machine.take_output())
                return _lines(b"".join(out)), events
            event = machine.receive()
        out.append(machine.take_output())
        assert not machine.closed
    return _lines(b"".join(out)), events


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """`data` cut at `cuts` (each taken modulo its length + 1): the chunks, in order."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _lines(out: bytes) -> list[bytes]:
    assert out.endswith(b"\r\n"), out[-80:]
    lines = out[:-2].split(b"\r\n")
    for line in lines:
        assert REPLY_LINE.fullmatch(line), line
    return lines


def smtp_session(data: bytes, cuts: Sequence[int], max_size: int = 2000) -> None:
    """`data` whole and cut at `cuts`: never an exception, well-formed replies, and the
    same messages taken (the same contents) and the same classes of reply either way."""
    whole_lines, whole_events = converse([data], max_size)
    cut_lines, cut_events = converse(split(data, cuts), max_size)
    if ("tls",) in whole_events or ("tls",) in cut_events:
        return  # what follows STARTTLS in the same chunk is dropped (RFC 3207 §4.2)
    # With several rules broken at once inside DATA, which refusal is said may depend on
    # where the chunks end (data.py); that a message is taken or refused may not.
    assert [line[:1] for line in cut_lines] == [line[:1] for line in whole_lines]
    assert cut_events == whole_events


# --- DATA ----------------------------------------------------------------------------------


def data_stream(data: bytes, cuts: Sequence[int], max_size: int, normalize: bool) -> None:
    """Any bytes, in any split: the reader ends at the first <CRLF>.<CRLF> (counting the
    start as a line start) and hands back exactly what follows; it keeps at most
    `max_size` octets; a message it accepts is the dot-unstuffed CRLF text."""
    reader = DataReader(max_size=max_size, normalize=normalize)
    rest, fed = b"", 0
    for chunk in split(data, cuts):
        rest = reader.feed(chunk)
        fed += len(chunk)
        if reader.done:
            rest += data[fed:]
            break
        assert rest == b""
    virtual = b"\r\n" + data
    end = virtual.find(b"\r\n.\r\n")
    if end < 0:
        assert not reader.done
        return
    assert reader.done
    assert rest == virtual[end + 5 :]
    if reader.refusal is not None:
        assert reader.refusal[:1] == "5", reader.refusal
        return
    content = reader.content()
    assert not max_size or len(content) <= max_size
    body = data[:end]  # the lines before the terminator, each with its CRLF
    lines = body.split(b"\r\n")[:-1] if body else []
    expected = b"".join((line[1:] if line[:1] == b"." else line) + b"\r\n" for line in lines)
    if not normalize:
        assert content == expected
    else:
        assert re.sub(rb"\r\n?|\n", b"\r\n", expected) == content


# --- the configuration ---------------------------------------------------------------------


def config_text(text: str) -> None:
    """Nothing but ConfigError out of parsing, validating and compiling the settings."""
    try:
        config = loads(text, "fuzz.conf")
    except ConfigError as error:
        assert error.problems, "a ConfigError names at least one problem"
        for problem in error.problems:
            assert problem.location.file == "fuzz.conf", problem
            assert problem.message, problem
        return
    try:
        compile_settings(config)
    except ConfigError as error:
        assert error.problems
        return


# --- the spool record format ---------------------------------------------------------------


def spool_record(data: bytes) -> None:
    """A record parsed from any bytes is one whose encoding is exactly those bytes; a
    segment scan of any bytes raises nothing and tiles the data with what it yields, up to
    the last byte that is not zero (zeros only after it)."""
    try:
        record = fmt.parse_record(data, 0)
    except fmt.FormatError:
        pass
    else:
        assert fmt.encode_record(record.kind, record.body) == data[: record.length]
        spool_body(record.kind, record.body)
    offset = 0
    for item in fmt.scan_records(data, 0):
        assert item.offset == offset, (item, offset)
        assert item.length > 0
        offset += item.length
    assert offset == fmt.logical_end(data, 0)
    assert not data[offset:].strip(b"\0")


def spool_body(kind: fmt.RecordKind, body: bytes) -> None:
    """Decoding any body raises nothing but FormatError; once decoded and encoded again,
    a body is a fixed point (it decodes to what it was made from, byte for byte)."""
    if kind is fmt.RecordKind.MESSAGE:
        try:
            envelope, start = fmt.decode_message(body)
        except fmt.FormatError:
            return
        content = body[start:]
        again = fmt.encode_message(envelope, content)
        parsed = fmt.parse_record(again, 0)
        envelope2, start2 = fmt.decode_message(parsed.body)
        assert parsed.body[start2:] == content
        assert same_envelope(envelope2, envelope), (envelope, envelope2)
        assert fmt.encode_message(envelope2, content) == again
    elif kind is fmt.RecordKind.UPDATE:
        try:
            message_id, updates = fmt.decode_update(body)
            group = fmt.update_group(body)
        except fmt.FormatError:
            return
        if group is None:
            again = fmt.encode_update(message_id, updates)
            message_id2, updates2 = fmt.decode_update(fmt.parse_record(again, 0).body)
            assert message_id2 == message_id
            assert fmt.encode_update(message_id2, updates2) == again
        else:
            again = fmt.encode_regroup(message_id, group)
            assert fmt.update_group(fmt.parse_record(again, 0).body) == group
    else:
        try:
            message_id = fmt.decode_remove(body)
        except fmt.FormatError:
            return
        again = fmt.encode_remove(message_id)
        assert fmt.decode_remove(fmt.parse_record(again, 0).body) == message_id


def same_envelope(a: Envelope, b: Envelope) -> bool:
    """Equal, counting NaN times as equal (json keeps NaN, and NaN != NaN)."""

    def key(envelope: Envelope) -> object:
        fields = dataclasses.astuple(envelope)
        return repr(fields) if _has_nan(envelope) else fields

    return key(a) == key(b)


def _has_nan(envelope: Envelope) -> bool:
    return math.isnan(envelope.received_at) or any(
        math.isnan(r.next_attempt) for r in envelope.recipients
    )
