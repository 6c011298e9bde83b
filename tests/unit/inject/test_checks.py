from __future__ import annotations

import ipaddress

import pytest

from relay.inject import replies
from relay.inject.addresses import parse_path
from relay.inject.checks import (
    Assignment,
    assign,
    check_declared_size,
    check_recipient,
    client_address,
    client_identity,
    declared_size,
    may_relay,
)
from relay.inject.settings import parse_network

RELAY_HOSTS = (parse_network("10.0.0.0/8"), parse_network("2001:db8::/32"))
GROUPS = {
    "default": frozenset({"default"}),
    "marketing": frozenset({"m1", "m2"}),
    "bulk": frozenset({"b1"}),
}


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        (("10.1.2.3", 25), "10.1.2.3"),
        (("::ffff:10.1.2.3", 25, 0, 0), "10.1.2.3"),
        (("fe80::1%eth0", 25, 0, 2), "fe80::1"),
        (None, None),
        ("/tmp/sock", None),
        (("not an ip", 1), None),
    ],
)
def test_client_address(peer: object, expected: str | None) -> None:
    address = client_address(peer)
    assert (str(address) if address else None) == expected
    # Asked again (the next connection from the same host): the same answer, from memory.
    again, text = client_identity(peer)
    assert again == address
    assert text == (expected or "unknown")


@pytest.mark.parametrize(
    ("ip", "authenticated", "expected"),
    [
        ("10.9.9.9", False, True),
        ("192.0.2.1", False, False),
        ("192.0.2.1", True, True),
        ("2001:db8::5", False, True),
        ("2001:db9::5", False, False),
        (None, False, False),
    ],
)
def test_may_relay(ip: str | None, authenticated: bool, expected: bool) -> None:
    address = ipaddress.ip_address(ip) if ip else None
    assert may_relay(address, RELAY_HOSTS, authenticated) is expected


def test_recipient_decisions() -> None:
    path = parse_path("<r@example.com>").mailbox is None
    assert check_recipient(path, may_relay=True, accepted=0, max_recipients=100) is None
    assert check_recipient(path, may_relay=True, accepted=99, max_recipients=100) is None
    assert (
        check_recipient(path, may_relay=True, accepted=100, max_recipients=100)
        == replies.TOO_MANY_RECIPIENTS
    )
    assert check_recipient(path, may_relay=False, accepted=0, max_recipients=100) == (
        replies.RELAY_DENIED
    )
    assert check_recipient(
        parse_path("<>").mailbox is None, may_relay=True, accepted=0, max_recipients=100
    ) == (replies.NULL_RECIPIENT)
    for trick in ("<a%b@example.com>", '<"a@b"@example.com>', "<a!b@example.com>"):
        refusal = check_recipient(
            parse_path(trick).mailbox is None, may_relay=False, accepted=0, max_recipients=100
        )
        assert refusal is not None and refusal.startswith("550 5.7.1")


def test_declared_size() -> None:
    assert declared_size(["BODY=8BITMIME", "SIZE=1234"]) == 1234
    assert declared_size(["size=7"]) == 7
    assert declared_size(["SIZE=x"]) is None
    assert declared_size([]) is None
    assert check_declared_size(1001, 1000) == replies.MESSAGE_TOO_BIG
    assert check_declared_size(1000, 1000) is None
    assert check_declared_size(10**12, 0) is None  # 0: no limit
    assert check_declared_size(None, 1000) is None


@pytest.mark.parametrize(
    ("headers", "listener", "expected"),
    [
        ((None, None), (None, None), Assignment("default", None)),
        (("marketing", None), (None, None), Assignment("marketing", None)),
        ((None, "m2"), (None, None), Assignment("marketing", "m2")),
        (("marketing", "m1"), (None, None), Assignment("marketing", "m1")),
        ((None, None), ("bulk", None), Assignment("bulk", None)),
        ((None, None), (None, "b1"), Assignment("bulk", "b1")),
        (("marketing", None), ("bulk", "b1"), Assignment("marketing", None)),
        ((None, "default"), (None, None), Assignment("default", "default")),
    ],
)
def test_assign(
    headers: tuple[str | None, str | None],
    listener: tuple[str | None, str | None],
    expected: Assignment,
) -> None:
    result = assign(
        header_group=headers[0],
        header_binding=headers[1],
        listener_group=listener[0],
        listener_binding=listener[1],
        groups=GROUPS,
    )
    assert result == expected


@pytest.mark.parametrize(
    ("group", "binding", "reply"),
    [
        ("nosuch", None, '550 5.7.1 Unknown binding group "nosuch"'),
        ("Marketing", None, '550 5.7.1 Unknown binding group "Marketing"'),  # case-sensitive
        (None, "nosuch", '550 5.7.1 Unknown binding "nosuch"'),
        ("bulk", "m1", '550 5.7.1 Binding "m1" is not in binding group "bulk"'),
        ("bad\x01name", None, '550 5.7.1 Unknown binding group "bad?name"'),
    ],
)
def test_assign_refuses_unknown_names(group: str | None, binding: str | None, reply: str) -> None:
    result = assign(
        header_group=group,
        header_binding=binding,
        listener_group=None,
        listener_binding=None,
        groups=GROUPS,
    )
    assert result == reply
