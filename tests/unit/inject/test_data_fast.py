"""DataReader's whole-chunk path must decide exactly as its line-by-line path does, fed the
same chunks (with several rules broken at once, the line-by-line path's choice of reply can
depend on where chunks end; it is the reference)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.inject.data import DataReader

_PIECES = st.sampled_from(
    [b"a", b"x" * 70, b"x" * 500, b".", b"..", b"\r\n", b"\r", b"\n", b"\x00", b"\r\n.\r\n"]
)


class LineByLine(DataReader):
    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return chunk
        return self._feed_lines(chunk)


def _run(reader: DataReader, data: bytes, chunk: int) -> bytes:
    rest = b""
    for i in range(0, len(data), chunk):
        rest = reader.feed(data[i : i + chunk])
        if reader.done:
            return rest + data[i + chunk :]
    return rest


@settings(max_examples=400)
@given(
    st.lists(_PIECES, max_size=40),
    st.integers(min_value=1, max_value=3000),
    st.sampled_from([0, 300, 3000]),
    st.booleans(),
)
def test_fast_path_matches_line_by_line(
    pieces: list[bytes], chunk: int, max_size: int, normalize: bool
) -> None:
    data = b"".join(pieces) + b"\r\n.\r\nNOOP\r\n"
    fast = DataReader(max_size=max_size, normalize=normalize)
    slow = LineByLine(max_size=max_size, normalize=normalize)
    fast_rest = _run(fast, data, chunk)
    slow_rest = _run(slow, data, chunk)
    assert fast.done and slow.done
    assert fast_rest == slow_rest
    assert fast.refusal == slow.refusal
    if fast.refusal is None:
        assert fast.content() == slow.content()


def test_whole_message_in_one_chunk_is_one_part() -> None:
    reader = DataReader(max_size=0)
    body = b"Subject: x\r\n\r\n" + b"y" * 70 + b"\r\n"
    assert reader.feed(body + b".\r\nQUIT\r\n") == b"QUIT\r\n"
    assert reader.content() == body
