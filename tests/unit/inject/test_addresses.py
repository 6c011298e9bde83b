from __future__ import annotations

import pytest

from relay.inject.addresses import AddressError, parse_path


@pytest.mark.parametrize(
    ("text", "address", "params"),
    [
        ("<a@example.com>", "a@example.com", ""),
        (
            "<a.b+c@sub.example.com> SIZE=10 BODY=8BITMIME",
            "a.b+c@sub.example.com",
            "SIZE=10 BODY=8BITMIME",
        ),
        ("<>", "<>", ""),
        ("<> SIZE=5", "<>", "SIZE=5"),
        ('<"john doe"@example.com>', '"john doe"@example.com', ""),
        ('<"a\\"b"@example.com>', '"a\\"b"@example.com', ""),
        ("<user%host@example.com>", "user%host@example.com", ""),
        ("<a@[192.0.2.1]>", "a@[192.0.2.1]", ""),
        ("<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]", ""),
        ("  <a@example.com>  ", "a@example.com", ""),
    ],
)
def test_valid_paths(text: str, address: str, params: str) -> None:
    parsed = parse_path(text)
    assert (parsed.address, parsed.params) == (address, params)


@pytest.mark.parametrize(
    "text",
    [
        "a@example.com",  # no angle brackets
        "<a@example.com",
        "<@a:b@c>",  # source route
        "<@a,@b:user@example.com>",
        "<u@d@relay>",
        "<postmaster>",
        "<a..b@example.com>",
        "<.a@example.com>",
        "<a.@example.com>",
        "<a@-example.com>",
        "<a@example..com>",
        "<a@exa_mple.com>",
        "<a@[300.1.1.1]>",
        "<a@[IPv6:zz]>",
        "<a@[general:literal]>",
        '<"unterminated@example.com>',
        "<a b@example.com>",
        "<a@example.com>SIZE=1",
        "<a(comment)@example.com>",
        "<a@example.com",
    ],
)
def test_refused_paths_get_553_5_1_3(text: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_path(text)
    assert caught.value.reply.startswith("553 5.1.3 ")


def test_length_limits() -> None:
    assert parse_path(f"<{'a' * 64}@example.com>").mailbox is not None
    with pytest.raises(AddressError, match="Local part longer than 64"):
        parse_path(f"<{'a' * 65}@example.com>")
    domain = ".".join(["d" * 63] * 4)  # 255
    assert parse_path(f"<abc@{domain[:250]}>").mailbox is not None  # 256 with the brackets
    with pytest.raises(AddressError, match="Path longer than 256"):
        parse_path(f"<abcd@{domain[:250]}>")
    with pytest.raises(AddressError, match="Path longer than 256"):
        parse_path(f"<a@{domain}>")
    with pytest.raises(AddressError, match="Domain longer than 255"):
        parse_path(f"<a@{domain}.d>")
    with pytest.raises(AddressError, match="Malformed domain"):
        parse_path(f"<a@{'d' * 64}.com>")


@pytest.mark.parametrize(
    ("text", "suspicious"),
    [
        ("<a@example.com>", False),
        ("<a%b@example.com>", True),
        ("<a!b@example.com>", True),
        ('<"a"@example.com>', True),
    ],
)
def test_suspicious_local_parts(text: str, suspicious: bool) -> None:
    mailbox = parse_path(text).mailbox
    assert mailbox is not None and mailbox.is_suspicious is suspicious
