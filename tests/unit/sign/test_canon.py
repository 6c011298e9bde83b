"""Canonicalization (RFC 6376 3.4): the RFC's own example, the edge cases, and a
differential test against dkimpy's implementation on CRLF-terminated bodies."""

from __future__ import annotations

from dkim.canonicalization import Relaxed, Simple
from hypothesis import given
from hypothesis import strategies as st

from relay.sign import canon

# RFC 6376 section 3.4.5.
RFC_HEADERS = [(b"A", b" X\r\n"), (b"B ", b": Y\t\r\n\tZ  \r\n")]
RFC_BODY = b" C \r\nD \t E\r\n\r\n\r\n"


def test_rfc_6376_example_relaxed() -> None:
    assert canon.header_relaxed(b"A", b" X\r\n") == b"a:X\r\n"
    assert canon.header_relaxed(b"B ", b" Y\t\r\n\tZ  \r\n") == b"b:Y Z\r\n"
    assert canon.body_relaxed(RFC_BODY) == b" C\r\nD E\r\n"


def test_rfc_6376_example_simple() -> None:
    assert canon.header_simple(b"A", b" X\r\n") == b"A: X\r\n"
    assert canon.header_simple(b"B ", b" Y\t\r\n\tZ  \r\n") == b"B : Y\t\r\n\tZ  \r\n"
    assert canon.body_simple(RFC_BODY) == b" C \r\nD \t E\r\n"


def test_empty_bodies() -> None:
    assert canon.body_simple(b"") == b"\r\n"
    assert canon.body_simple(b"\r\n\r\n\r\n") == b"\r\n"
    assert canon.body_relaxed(b"") == b""
    assert canon.body_relaxed(b"\r\n") == b""
    assert canon.body_relaxed(b" \t\r\n  \r\n") == b""


def test_a_missing_final_crlf_is_added() -> None:
    assert canon.body_simple(b"abc") == b"abc\r\n"
    assert canon.body_relaxed(b"abc  ") == b"abc\r\n"


def test_only_trailing_empty_lines_go() -> None:
    body = b"a\r\n\r\nb\r\n\r\n"
    assert canon.body_simple(body) == b"a\r\n\r\nb\r\n"
    assert canon.body_relaxed(body) == b"a\r\n\r\nb\r\n"


def test_eight_bit_and_long_lines_pass_through() -> None:
    body = "été  ünïcode\r\n".encode() + b"x" * 5000 + b"\r\n"
    assert canon.body_simple(body) == body
    assert canon.body_relaxed(body) == "été ünïcode\r\n".encode() + b"x" * 5000 + b"\r\n"


LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
WSP_LINE = st.lists(st.sampled_from([b"a", b"\xe9", b" ", b"\t", b"  ", b"b c"]), max_size=8).map(
    b"".join
)
BODY = st.lists(st.one_of(LINE, WSP_LINE, st.just(b"")), max_size=12).map(
    lambda lines: b"".join(line + b"\r\n" for line in lines)
)


@given(BODY)
def test_bodies_match_dkimpy(body: bytes) -> None:
    assert canon.body_simple(body) == Simple.canonicalize_body(body)
    assert canon.body_relaxed(body) == Relaxed.canonicalize_body(body)


VALUE = st.lists(st.sampled_from([b"x", b" ", b"\t", b"\r\n ", b"\r\n\t", b"y z"]), max_size=8).map(
    lambda parts: b"".join(parts) + b"\r\n"
)


@given(st.sampled_from([b"Subject", b"TO", b"X-Thing "]), VALUE)
def test_headers_match_dkimpy(name: bytes, value: bytes) -> None:
    [(dk_name, dk_value)] = Relaxed.canonicalize_headers([(name, value)])
    assert canon.header_relaxed(name, value) == dk_name + b":" + dk_value


NAME = st.sampled_from([b"Subject", b"TO", b"X-Thing ", b"from"])
PLAIN_VALUE = st.lists(st.sampled_from([b"x", b" ", b"y z", b"\xe9", b":"]), max_size=6).map(
    lambda parts: b"".join(parts) + b"\r\n"
)


@given(st.lists(st.tuples(NAME, st.one_of(VALUE, PLAIN_VALUE, st.binary(max_size=12)))))
def test_fields_are_each_field_canonicalized(fields: list[tuple[bytes, bytes]]) -> None:
    """The one-scan fast path gives what field-by-field canonicalization gives."""
    expect = b"".join(canon.header_relaxed(name, value) for name, value in fields)
    assert canon.fields_relaxed(fields) == expect
    assert canon.fields_simple(fields) == b"".join(canon.header_simple(n, v) for n, v in fields)
