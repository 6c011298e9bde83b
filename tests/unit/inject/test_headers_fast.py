"""The cached and regex fast paths in headers give what the plain code gives."""

from __future__ import annotations

import datetime
import email.utils

from relay.inject import headers


def _slow_comment_safe(text: str) -> str:
    cleaned = "".join(c if 33 <= ord(c) < 127 and c not in "()\\;" else "?" for c in text)
    return cleaned[:255] or "?"


def test_comment_safe_matches_the_character_rule() -> None:
    for code in range(300):
        for text in (chr(code), f"a{chr(code)}b"):
            assert headers._comment_safe(text) == _slow_comment_safe(text)
    assert headers._comment_safe("x" * 300) == "x" * 255
    assert headers._comment_safe("") == "?"


def test_field_names_are_ftext() -> None:
    for octet in range(256):
        parsed = headers.parse(bytes([octet]) + b"ab: v\r\n\r\n")
        assert bool(parsed.fields) == (33 <= octet < 127 and octet != ord(":"))


def test_date_is_cached_per_second_and_timezone_independent() -> None:
    utc = datetime.datetime(2025, 7, 1, 12, 0, 0, 100, tzinfo=datetime.UTC)
    plus2 = utc.astimezone(datetime.timezone(datetime.timedelta(hours=2))).replace(microsecond=9)
    expected = email.utils.format_datetime(utc.replace(microsecond=0))
    assert headers._date(utc) == expected
    assert headers._date(plus2) == expected
    later = utc + datetime.timedelta(seconds=1)
    assert headers._date(later) == email.utils.format_datetime(later.replace(microsecond=0))


_PIECES = [
    b"Subject: hi\r\n",
    b"X-Binding-Group: g\r\n",
    b"Received: from a\r\n\tby b\r\n",
    b" folded\r\n",
    b"\t \r\n",
    b" \x0b\r\n",
    b"\r\n",
    b"body line\r\n",
    b"Name : spaced\r\n",
    b": empty name\r\n",
    b"\t: tab name\r\n",
    b"Bad\rField: x\r\n",
    b"No-CRLF: end",
    b"To: <a@b>\r\n",
]


def test_the_fast_parse_splits_as_the_line_by_line_parse() -> None:
    """Every sequence of up to four pieces (14**4 inputs), the fast path and its fallback
    against the line-by-line reading."""
    import itertools

    for count in range(5):
        for combo in itertools.product(_PIECES, repeat=count):
            content = b"".join(combo)
            fast, slow = headers.parse(content), headers.parse_any(content)
            assert fast == slow, content


_PREPARE_PIECES = [
    b"Subject: hi\r\n",
    b"Received: from a\r\n\tby b\r\n",
    b"received : x\r\n",
    b"Received-SPF: pass\r\n",
    b"Message-ID: <m@x>\r\n",
    b"MESSAGE-id:<n@x>\r\n",
    b"X-Message-ID: <no@x>\r\n",
    b" folded\r\n",
    b"\t \r\n",
    b"\r\n",
    b"body\r\n",
    b"X-Binding: m1\r\n",
]


def test_prepare_without_splitting_fields_gives_what_the_parsed_way_gives() -> None:
    """Every sequence of up to four pieces (12**4 inputs): where the plain path decides, its
    message (or refusal) is the parsed path's, byte for byte; it decides the usual shape."""
    import itertools

    from relay.inject import message

    when = datetime.datetime(2025, 7, 1, 12, 0, 0, tzinfo=datetime.UTC)
    groups = {"default": frozenset({"default"}), "marketing": frozenset({"m1"})}
    decided = 0
    for listener_group in (None, "marketing", "nope"):
        reception = message.Reception(
            client_ip="192.0.2.1",
            helo="client.example",
            esmtp=True,
            tls=False,
            authenticated=False,
            recipients=("a@example.com",),
            queue_id="0123456789abcdef",
            received_at=when,
            listener_group=listener_group,
            listener_binding=None,
        )
        kwargs = {"hostname": "relay.test", "groups": groups, "max_received": 2}
        for count in range(5):
            for combo in itertools.product(_PREPARE_PIECES, repeat=count):
                content = b"".join(combo)
                plain = message._prepare_plain(content, reception, **kwargs)  # type: ignore[arg-type]
                if plain is None:
                    continue
                decided += 1
                assert plain == message._prepare_parsed(content, reception, **kwargs), content  # type: ignore[arg-type]
    assert decided > 1000
    typical = b"From: a@b\r\nSubject: s\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n"
    assert message._prepare_plain(typical, reception, **kwargs) is not None  # type: ignore[arg-type]
