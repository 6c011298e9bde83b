"""Fuzz the SMTP command parser and state machine (relay/inject/protocol.py) and the DATA
reader (relay/inject/data.py) with hypothesis: see fuzz_targets for the properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.inject.data import ChunkFeeder, DataReader
from tests.reliability.fuzz_targets import converse, data_stream, smtp_session, split

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOAK = settings(max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))

# Pieces of SMTP: commands, parameters and the octets that break things.
PIECES = [
    b"EHLO c.test\r\n",
    b"HELO c.test\r\n",
    b"EHLO",
    b"HELO",
    b"MAIL FROM:",
    b"RCPT TO:",
    b"<a@example.test>",
    b"<r@example.com>",
    b"<suppressed@example.com>",
    b"<>",
    b"<",
    b">",
    b"@",
    b"a@b",
    b'"q u"@x.test',
    b" SIZE=10",
    b" SIZE=99999",
    b" SMTPUTF8",
    b" BODY=8BITMIME",
    b" RET=HDRS",
    b" ENVID=a+2Bb",
    b" NOTIFY=SUCCESS,DELAY",
    b" NOTIFY=NEVER",
    b" ORCPT=rfc822;x@y.test",
    b" REQUIRETLS",
    b"=",
    b" ",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 0 LAST\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT x\r\n",
    b"\r\n.\r\n",
    b".\r\n",
    b"..",
    b".",
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b"\xc3\xb6",
    b"\xff",
    b"\x7f",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n",
    b"AUTH LOGIN\r\n",
    b"dXNlcg==\r\n",
    b"c2VjcmV0\r\n",
    b"*\r\n",
    b"STARTTLS\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"VRFY ",
    b"HELP ",
    b"EXPN x\r\n",
    b"x" * 600,
    b"y" * 1200,
    b"Subject: s\r\n\r\nbody\r\n",
]
smtp_input = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=12)), max_size=40).map(
    b"".join
)
cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=8)


@FAST
@given(smtp_input, cuts)
def test_smtp_session_any_bytes(data: bytes, points: list[int]) -> None:
    smtp_session(data, points)


@pytest.mark.soak
@SOAK
@given(smtp_input, cuts)
def test_smtp_session_any_bytes_soak(data: bytes, points: list[int]) -> None:
    smtp_session(data, points)


DATA_PIECES = [
    b"a",
    b"x" * 70,
    b"x" * 998,
    b"x" * 999,
    b".",
    b"..",
    b"\r\n",
    b"\r",
    b"\n",
    b"\x00",
    b"\r\n.\r\n",
    b".\r\n",
    b"\r\n.",
    b"\xc3\xb6",
    b"\r\r\n",
    b"\n.\n",
]
data_input = st.lists(
    st.one_of(st.sampled_from(DATA_PIECES), st.binary(max_size=8)), max_size=60
).map(b"".join)
sizes = st.sampled_from([0, 1, 50, 500, 3000])


@FAST
@given(data_input, cuts, sizes, st.booleans())
def test_data_reader_any_bytes(data: bytes, points: list[int], size: int, norm: bool) -> None:
    data_stream(data, points, size, norm)


@pytest.mark.soak
@SOAK
@given(data_input, cuts, sizes, st.booleans())
def test_data_reader_any_bytes_soak(data: bytes, points: list[int], size: int, norm: bool) -> None:
    data_stream(data, points, size, norm)


text_line = st.lists(
    st.sampled_from([b"a", b".", b"..", b" ", b"\xc3\xb6", b"x" * 100, b"\t"]), max_size=6
).map(b"".join)


@FAST
@given(st.lists(text_line, max_size=15), cuts, sizes)
def test_dot_stuffing_round_trips(lines: list[bytes], points: list[int], size: int) -> None:
    """A client's dot-stuffed lines, cut anywhere, come out as the client's lines; the
    size limit counts the unstuffed octets with their CRLFs, exactly."""
    stuffed = b"".join((b"." + line if line[:1] == b"." else line) + b"\r\n" for line in lines)
    wire = stuffed + b".\r\nQUIT\r\n"
    reader = DataReader(max_size=size)
    rest, fed = b"", 0
    for chunk in split(wire, points):
        rest = reader.feed(chunk)
        fed += len(chunk)
        if reader.done:
            rest += wire[fed:]
            break
    assert reader.done and rest == b"QUIT\r\n"
    text = b"".join(line + b"\r\n" for line in lines)
    if size and len(text) > size:
        assert reader.refusal is not None and reader.refusal.startswith("552 5.3.4")
    else:
        assert reader.refusal is None
        assert reader.content() == text


@FAST
@given(st.lists(text_line, max_size=15), cuts, st.booleans())
def test_bdat_chunks_round_trip(lines: list[bytes], points: list[int], last_crlf: bool) -> None:
    """BDAT content cut in any chunks (an embedded <CRLF>.<CRLF> is only text) comes out
    as sent, with a CRLF added when it does not end with one."""
    text = b"\r\n".join(lines) + (b"\r\n" if last_crlf else b"")
    feeder = ChunkFeeder(DataReader(max_size=0))
    for chunk in split(text, points):
        feeder.feed(chunk)
    feeder.finish()
    reader = feeder.reader
    assert reader.refusal is None
    expected = text if not text or text.endswith(b"\r\n") else text + b"\r\n"
    assert reader.content() == expected


# --- regressions (each found by the abuse or fuzz runs) ---------------------------------------


def test_unknown_command_does_not_echo_control_octets() -> None:
    lines, _ = converse([b"MA\x00IL x\r\nX\rY\r\n\x1b[31m\r\n"], 2000)
    assert lines[1:] == [
        b'500 5.5.1 Error: command "MA?IL" not recognized',
        b'500 5.5.1 Error: command "X?Y" not recognized',
        b'500 5.5.1 Error: command "?[31M" not recognized',
    ]


def test_vrfy_does_not_echo_control_octets() -> None:
    lines, _ = converse([b"VRFY a\x00b\rc\r\n"], 2000)
    assert lines[1] == b"502 5.5.1 Could not VRFY a?b?c"


def test_rcpt_with_a_non_ascii_parameter_names_the_parameter() -> None:
    lines, _ = converse(
        [
            b"EHLO c.test\r\nMAIL FROM:<a@example.test>\r\n",
            b"RCPT TO:<r@example.com> NOTIFY=\xc3\xb6\r\n",
            b"RCPT TO:<r\xc3\xb6@example.com>\r\n",
        ],
        2000,
    )
    assert lines[-2] == b"501 5.5.4 Error: ESMTP parameters must be ASCII"
    assert lines[-1] == b"553 5.6.7 Non-ASCII address needs SMTPUTF8 on MAIL FROM"


def test_data_after_a_refusal_is_only_searched_for_its_end() -> None:
    """100 MB over a 10 MB limit: read to the terminator and refused, the pipelined command
    after it handed back, the kept content bounded (it was read line by line: seconds of
    CPU that kept other clients waiting)."""
    import time

    reader = DataReader(max_size=10 * 1024 * 1024)
    block = (b"x" * 998 + b"\r\n") * 256
    started = time.process_time()
    for _ in range(400):
        assert reader.feed(block) == b""
    assert reader.feed(b"\r\n.\r\nQUIT\r\n") == b"QUIT\r\n"
    assert reader.refusal is not None and reader.refusal.startswith("552 5.3.4")
    assert time.process_time() - started < 1.5  # 2.3 s line by line, 0.2 s now
