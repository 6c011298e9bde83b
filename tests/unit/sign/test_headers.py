"""The header section, the h= list and which instances it covers (RFC 6376 5.4)."""

from __future__ import annotations

from relay.sign.headers import NEVER_SIGNED, from_domain, index, select, signed_names, split

MESSAGE = (
    b"Received: from a\r\n\tby b\r\n"
    b"From: Some One <one@Example.COM>\r\n"
    b"To: x@y.test\r\n"
    b"To: z@y.test\r\n"
    b"Subject: hi\r\n"
    b"\r\n"
    b"body\r\n\r\n"
)


def test_split_keeps_raw_fields_and_body() -> None:
    fields, body = split(MESSAGE)
    assert [name for name, _ in fields] == [b"Received", b"From", b"To", b"To", b"Subject"]
    assert fields[0][1] == b" from a\r\n\tby b\r\n"
    assert body == b"body\r\n\r\n"


def test_split_without_body() -> None:
    fields, body = split(b"From: a@b.test\r\n")
    assert fields == [(b"From", b" a@b.test\r\n")] and body == b""
    assert split(b"\r\nonly body\r\n") == ([], b"only body\r\n")


def test_each_instance_listed_and_absent_ones_left_out() -> None:
    fields, _ = split(MESSAGE)
    names = signed_names(index(fields), ("from", "to", "subject", "date"))
    assert names == ["from", "to", "to", "subject"]


def test_oversigned_names_appear_once_more() -> None:
    fields, _ = split(MESSAGE)
    names = signed_names(index(fields), ("from", "subject"), ("from", "reply-to"))
    assert names == ["from", "from", "subject", "reply-to"]


def test_instances_are_taken_bottom_up() -> None:
    fields, _ = split(MESSAGE)
    chosen = select(index(fields), ["to", "to", "to", "from"])
    assert [value for _, value in chosen] == [
        b" z@y.test\r\n",
        b" x@y.test\r\n",
        b" Some One <one@Example.COM>\r\n",
    ]


def test_from_domain() -> None:
    fields, _ = split(MESSAGE)
    assert from_domain(fields) == "example.com"
    assert from_domain(split(b"From: undisclosed\r\n\r\n")[0]) is None
    assert from_domain(split(b"To: a@b.test\r\n\r\n")[0]) is None
    assert from_domain(split(b"From: a@B.test\r\n\r\n")[0]) == "b.test"
    assert from_domain(split(b"From: <a@b.test>\r\n\r\n")[0]) == "b.test"
    assert from_domain(split(b"From: a@b.test (Comment <x@y.test>)\r\n\r\n")[0]) == "b.test"
    assert from_domain(split(b'From: "x@y.test" <a@b.test>\r\n\r\n')[0]) == "b.test"
    assert from_domain(split("From: a@Bücher.example\r\n\r\n".encode())[0]) == (
        "xn--bcher-kva.example"
    )
    assert from_domain(split("From: a@\u3002\r\n\r\n".encode())[0]) is None
    folded = b'From: "A, B"\r\n <a@Sub.Example.org.>\r\n\r\n'
    assert from_domain(split(folded)[0]) == "sub.example.org"


def test_relay_own_fields_are_never_signed() -> None:
    assert {"x-binding-group", "x-binding", "x-relay-fbl", "dkim-signature"} <= NEVER_SIGNED
