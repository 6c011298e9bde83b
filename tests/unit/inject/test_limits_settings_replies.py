from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import aiosmtpd.smtp
import pytest

from relay.inject import replies
from relay.inject.limits import ConnectionLimits
from relay.inject.settings import (
    InjectSettings,
    ListenerSettings,
    PeerSettings,
    parse_listen_address,
    parse_network,
)


def test_connection_limits() -> None:
    limits = ConnectionLimits(per_ip=2)
    assert limits.admit("l1", 3, "1.1.1.1", "h") is None
    assert limits.admit("l1", 3, "1.1.1.1", "h") is None
    assert limits.admit("l1", 3, "1.1.1.1", "h") == replies.TOO_MANY_FROM_IP.format(host="h")
    assert limits.admit("l1", 3, "2.2.2.2", "h") is None
    assert limits.admit("l1", 3, "3.3.3.3", "h") == replies.TOO_MANY_CONNECTIONS.format(host="h")
    assert limits.admit("l2", None, "3.3.3.3", "h") is None  # another listener
    assert limits.open_connections("l1") == 3 and limits.open_connections() == 4
    limits.release("l1", "1.1.1.1")
    assert limits.admit("l1", 3, "1.1.1.1", "h") is None
    for ip in ("1.1.1.1", "1.1.1.1", "2.2.2.2"):
        limits.release("l1", ip)
    limits.release("l2", "3.3.3.3")
    assert limits.open_connections() == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4:25", ("1.2.3.4", 25)),
        (":25", ("0.0.0.0", 25)),
        ("*:2525", ("0.0.0.0", 2525)),
        ("[::1]:25", ("::1", 25)),
        ("[*]:25", ("::", 25)),
        ("mail.example:587", ("mail.example", 587)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["1.2.3.4", "::1:25", "[::1]25", "[nope]:25", "h:70000", "h:x"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="listen address"):
        parse_listen_address(text)


def test_networks() -> None:
    assert parse_network("10.0.0.1/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_network("::1") == ipaddress.ip_network("::1/128")
    with pytest.raises(ValueError, match="CIDR"):
        parse_network("10.0.0.0/33")


def test_peer_lookup_prefers_the_longest_prefix() -> None:
    listener = ListenerSettings(
        ":25",
        peers=(
            PeerSettings(parse_network("10.0.0.0/8"), binding_group="wide"),
            PeerSettings(parse_network("10.1.0.0/16"), binding_group="narrow"),
            PeerSettings(parse_network("2001:db8::/32"), binding_group="v6"),
        ),
    )
    peer = listener.peer_for(ipaddress.ip_address("10.1.2.3"))
    assert peer is not None and peer.binding_group == "narrow"
    peer = listener.peer_for(ipaddress.ip_address("10.2.2.3"))
    assert peer is not None and peer.binding_group == "wide"
    assert listener.peer_for(ipaddress.ip_address("192.0.2.1")) is None


def test_settings_defaults_and_validation(tmp_path: Path) -> None:
    settings = InjectSettings(listeners=(ListenerSettings(":25"),), hostname="relay.test")
    assert settings.max_recipients == 100
    assert settings.normalize_bare_line_endings is False
    assert settings.max_received_headers == 50
    assert dict(settings.binding_groups) == {"default": frozenset({"default"})}
    assert settings.group_of_binding("default") == "default"
    grouped = InjectSettings(
        listeners=(),
        hostname="h",
        binding_groups={"g": frozenset({"b"}), "default": frozenset({"top"})},
    )
    assert grouped.group_of_binding("b") == "g"
    assert grouped.binding_groups["default"] == frozenset({"top", "default"})
    with pytest.raises(TypeError):
        grouped.binding_groups["x"] = frozenset()  # type: ignore[index]
    with pytest.raises(ValueError, match="together"):
        InjectSettings(listeners=(), hostname="h", tls_certificate=tmp_path / "c")
    with pytest.raises(ValueError, match="declared in groups"):
        InjectSettings(
            listeners=(), hostname="h", binding_groups={"a": frozenset("x"), "b": frozenset("x")}
        )
    with pytest.raises(ValueError, match="max_recipients"):
        InjectSettings(listeners=(), hostname="h", max_recipients=0)
    with pytest.raises(ValueError, match="listen address"):
        ListenerSettings("nonsense")


def test_enhance_leaves_greeting_ehlo_and_enhanced_replies_alone() -> None:
    for reply in ("220 relay.test ESMTP relay", "250-relay.test", "250 HELP", "334 VXNlcm5hbWU6"):
        assert replies.enhance(reply) == reply
    assert replies.enhance("421 4.7.0 x") == "421 4.7.0 x"
    assert replies.enhance("500 Command line too long") == replies.COMMAND_TOO_LONG
    assert replies.enhance("503 Error: nested MAIL command") == (
        "503 5.5.1 Error: nested MAIL command"
    )
    assert replies.enhance("221 Bye") == "221 2.0.0 Bye"


def test_every_aiosmtpd_stock_reply_gets_an_enhanced_code() -> None:
    """Guards ENHANCEDSTATUSCODES against a new aiosmtpd reply we do not know."""
    source = Path(aiosmtpd.smtp.__file__).read_text()
    stock = set(re.findall(r"""['"]([2-5]\d\d [^'"{]*)""", source))
    exempt = {
        "220 ",
        "250 ",
        "250 HELP",
        "334 ",
        "354 End data with <CR><LF>.<CR><LF>",
    }  # greeting, HELO
    assert len(stock) > 30
    for reply in sorted(stock):
        if reply in exempt or reply[3:4] != " ":
            continue
        enhanced = replies.enhance(reply)
        assert re.match(r"^[245]\d\d [245]\.\d+\.\d+", enhanced), (reply, enhanced)
