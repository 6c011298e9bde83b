from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.inject import replies
from relay.inject.data import DataReader


def run(data: bytes, *, chunk: int = 0, max_size: int = 0, normalize: bool = False) -> DataReader:
    reader = DataReader(max_size=max_size, normalize=normalize)
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    for piece in pieces:
        reader.feed(piece)
        if reader.done:
            break
    return reader


def test_plain_message_is_unstuffed() -> None:
    reader = run(b"Subject: x\r\n\r\n..dot\r\n.\r\n")
    assert reader.done and reader.content() == b"Subject: x\r\n\r\n.dot\r\n"


def test_empty_message() -> None:
    reader = run(b".\r\n")
    assert reader.done and reader.content() == b""


def test_leftover_after_terminator_is_returned() -> None:
    reader = DataReader(max_size=0)
    assert reader.feed(b"a\r\n.\r\nQUIT\r\n") == b"QUIT\r\n"
    assert reader.content() == b"a\r\n"


@pytest.mark.parametrize(
    "vector",
    [b"\n.\n", b"\r.\r", b"\r.\n", b"\n.\r", b"\r\n.\n", b"\r\n.\r", b"\n.\r\n", b"\r.\r\n"],
)
@pytest.mark.parametrize("chunk", [0, 1, 3])
def test_smuggling_vectors_never_end_the_message(vector: bytes, chunk: int) -> None:
    data = b"first" + vector + b"MAIL FROM:<evil@x>\r\n"
    reader = run(data, chunk=chunk)
    assert not reader.done
    reader.feed(b".\r\n")
    assert reader.done and reader.refusal == replies.BARE_LINE_ENDING
    normal = run(data + b".\r\n", chunk=chunk, normalize=True)
    assert normal.done and normal.refusal is None
    content = normal.content()
    assert b"MAIL FROM:<evil@x>\r\n" in content
    assert b"\r" not in content.replace(b"\r\n", b"") and b"\n" not in content.replace(b"\r\n", b"")


def test_nul_is_refused_in_both_modes() -> None:
    for normalize in (False, True):
        reader = run(b"a\r\n\x00.\r\n.\r\n", normalize=normalize)
        assert reader.done and reader.refusal == replies.NUL_IN_DATA


def test_line_length_limit() -> None:
    assert run(b"x" * 998 + b"\r\n.\r\n").refusal is None
    assert run(b"." + b"x" * 998 + b"\r\n.\r\n").refusal is None  # the stuffing dot is free
    assert run(b"x" * 999 + b"\r\n.\r\n").refusal == replies.LINE_TOO_LONG
    long = run(b"x" * 100_000 + b"\r\n.\r\n", chunk=1001)
    assert long.done and long.refusal == replies.LINE_TOO_LONG
    assert run(b"x" * 600 + b"\n" + b"y" * 600 + b"\r\n.\r\n", normalize=True).refusal is None


def test_overlong_line_ending_in_dot_is_not_a_terminator() -> None:
    reader = run(b"x" * 5000 + b"\r\n", chunk=1001)
    assert not reader.done
    reader = DataReader(max_size=0)
    reader.feed(b"x" * 2000)
    reader.feed(b".\r\n")  # still the same overlong line
    assert not reader.done
    reader.feed(b".\r\n")
    assert reader.done and reader.refusal == replies.LINE_TOO_LONG


def test_size_limit_counts_unstuffed_content() -> None:
    assert run(b"12345678\r\n.\r\n", max_size=10).refusal is None
    assert run(b"123456789\r\n.\r\n", max_size=10).refusal == replies.MESSAGE_TOO_BIG
    assert run(b"..2345678\r\n.\r\n", max_size=10).refusal is None


def test_content_of_refused_message_is_unavailable() -> None:
    reader = run(b"a\nb\r\n.\r\n")
    with pytest.raises(RuntimeError):
        reader.content()


@given(st.lists(st.binary(max_size=40), max_size=20), st.integers(min_value=1, max_value=7))
def test_chunking_never_changes_the_outcome(lines: list[bytes], chunk: int) -> None:
    data = b"".join(line + b"\r\n" for line in lines) + b"\r\n.\r\n"
    whole = run(data)
    pieces = run(data, chunk=chunk)
    assert whole.done == pieces.done
    assert whole.refusal == pieces.refusal
    if whole.done and whole.refusal is None:
        assert whole.content() == pieces.content()


@given(st.binary(max_size=200))
def test_terminator_is_only_crlf_dot_crlf(data: bytes) -> None:
    reader = DataReader(max_size=0)
    rest = reader.feed(data)
    stream = b"\r\n" + data
    if reader.done:
        consumed = data[: len(data) - len(rest)]
        assert (b"\r\n" + consumed).endswith(b"\r\n.\r\n")
        assert b"\r\n.\r\n" not in (b"\r\n" + consumed)[:-3]
    else:
        assert b"\r\n.\r\n" not in stream
