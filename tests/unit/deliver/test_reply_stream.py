from __future__ import annotations

from relay.deliver.reply_stream import MAX_LINE_LENGTH, ReplyStream


def test_pipelined_replies_in_one_read() -> None:
    stream = ReplyStream()
    stream.feed(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n")
    assert list(stream.ready) == [
        (250, "2.1.0 ok"),
        (250, "2.1.5 ok"),
        (550, "5.1.1 no such user"),
        (354, "go ahead"),
    ]
    assert stream.failed is None


def test_replies_split_anywhere() -> None:
    data = b"250 2.1.0 ok\r\n451-4.3.0 first\r\n451 4.3.0 second\r\n354 go\r\n"
    for cut in range(1, len(data)):
        stream = ReplyStream()
        stream.feed(data[:cut])
        stream.feed(data[cut:])
        assert list(stream.ready) == [
            (250, "2.1.0 ok"),
            (451, "4.3.0 first\n4.3.0 second"),
            (354, "go"),
        ], cut


def test_incomplete_multiline_reply_waits() -> None:
    stream = ReplyStream()
    stream.feed(b"250-first\r\n250-second\r\n")
    assert not stream.ready
    stream.feed(b"250 last\r\n")
    assert list(stream.ready) == [(250, "first\nsecond\nlast")]


def test_code_only_and_bare_lf() -> None:
    stream = ReplyStream()
    stream.feed(b"250\r\n221 bye\n")
    assert list(stream.ready) == [(250, ""), (221, "bye")]


def test_malformed_line_fails_after_the_good_replies() -> None:
    stream = ReplyStream()
    stream.feed(b"250 ok\r\nhello there\r\n250 ok\r\n")
    assert list(stream.ready) == [(250, "ok")]
    assert stream.failed is not None
    assert stream.failed.text == "Malformed SMTP response line: hello there\r\n"
    stream.feed(b"250 more\r\n")
    assert len(stream.ready) == 1  # nothing after a failure is trusted


def test_overlong_line_and_endless_reply_fail() -> None:
    stream = ReplyStream()
    stream.feed(b"250 " + b"x" * MAX_LINE_LENGTH + b"\r\n")
    assert stream.failed is not None and stream.failed.text == "Response too long"
    stream = ReplyStream()
    for _ in range(100):
        stream.feed(b"250-" + b"x" * 1000 + b"\r\n")
    assert stream.failed is not None and stream.failed.text == "Response too long"


def test_non_utf8_text_survives() -> None:
    stream = ReplyStream()
    stream.feed(b"550 5.1.1 \xff bad\r\n")
    assert stream.ready[0][1].encode("utf-8", "surrogateescape") == b"5.1.1 \xff bad"
