"""Typed values: every form the reference pages use is read, and bad forms are refused."""

from __future__ import annotations

import pytest

from relay.config import options as o
from relay.config import values as v
from relay.config.errors import ValueProblem
from relay.config.tree import ListValue, Scalar


def s(text: str, quoted: bool = False) -> Scalar:
    return Scalar(text, quoted)


def lst(*items: str) -> ListValue:
    return ListValue(tuple(Scalar(i, True) for i in items))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300", 300),
        ("0.5", 0.5),
        ("4 hours", 14400),
        ("1h30m", 5400),
        ("2 days", 172800),
        ("90s", 90),
        ("1 week", 604800),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert v.DURATION(s(text, True)) == seconds


@pytest.mark.parametrize("text", ["", "soon", "4 fortnights", "-3", "1h junk"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueProblem):
        v.DURATION(s(text, True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("Off", False),
        ("0", False),
    ],
)
def test_booleans(text: str, expected: bool) -> None:
    assert v.BOOLEAN(s(text)) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", v.Throttle(10, 1.0)),
        ("1/60", v.Throttle(1, 60.0)),
        ("0", None),
        ("5/1m", v.Throttle(5, 60.0)),
    ],
)
def test_throttles(text: str, expected: v.Throttle | None) -> None:
    assert v.THROTTLE(s(text, True)) == expected


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("10.0.0.1", "10.0.0.1", None),
        ("[fe80::a00]:1", "fe80::a00", 1),
        ("my.local.smart.host", "my.local.smart.host", None),
        ("mx.example.com:2525", "mx.example.com", 2525),
        ("[::1]", "::1", None),
        ("::1", "::1", None),
    ],
)
def test_host_port(text: str, host: str, port: int | None) -> None:
    assert v.HOST_PORT(s(text, True)) == v.HostPort(host, port)


@pytest.mark.parametrize("text", ["[::1", "host:port", "a b", "[::1]x", "h:0"])
def test_bad_host_port(text: str) -> None:
    with pytest.raises(ValueProblem):
        v.HOST_PORT(s(text, True))


def test_ip_addresses() -> None:
    assert v.IP_ADDRESS(s("10.10.10.10")) == "10.10.10.10"
    assert v.IP_ADDRESS(s("[::1]", True)) == "::1"
    with pytest.raises(ValueProblem):
        v.IP_ADDRESS(s("example.com"))


def test_bounds() -> None:
    assert v.bounds(v.integer(0))(ListValue((s("20"), s("80")))) == (20, 80)
    assert o.OPTIONS["adaptive_retry_interval"].type(lst("10m", "1h")) == (600, 3600)
    with pytest.raises(ValueProblem):
        v.bounds(v.integer(0))(ListValue((s("1"),)))


def test_enums_case_insensitive() -> None:
    assert o.OPTIONS["tls"].type(s("IfAvailable")) == "ifavailable"
    assert o.OPTIONS["delivery_method"].type(lst("esmtp", "SMTP")) == ("ESMTP", "SMTP")


def test_networks() -> None:
    nets = v.NETWORKS(lst("127.0.0.0/8", "::1", "10.79.0.0/16"))
    assert [str(n) for n in nets] == ["127.0.0.0/8", "::1/128", "10.79.0.0/16"]
    with pytest.raises(ValueProblem):
        v.NETWORKS(lst("not-a-network"))


def test_sweep_rule_actions() -> None:
    assert v.ACTION(lst("throttle", "down")) == ("throttle", "down")
    assert v.ACTION(lst("suspend", "4 hours")) == ("suspend", "4 hours")
    with pytest.raises(ValueProblem):
        v.ACTION(lst("explode"))


def test_every_reference_option_is_registered() -> None:
    import re
    from pathlib import Path

    table = Path(__file__).parents[3].parent / "shared" / "reference" / "binding_group.md"
    if not table.exists():
        pytest.skip("shared/reference is not beside this checkout")
    names = set(re.findall(r"^\| \*\*\[([a-z_0-9]+)\]", table.read_text(), re.MULTILINE))
    assert names, "no option rows found"
    missing = names - set(o.OPTIONS) - set(o.STANZAS)
    assert not missing


def test_registry_scopes_match_reference_for_samples() -> None:
    assert o.OPTIONS["max_outbound_connections"].scopes == {
        "binding",
        "binding_group",
        "domain",
        "global",
        "host",
        "provider",  # relay's own provider stanza (per binding x provider)
    }
    assert o.OPTIONS["bind_address"].scopes == {"binding", "binding_group", "global"}
    assert o.OPTIONS["cluster_outbound_throttle_messages"].scopes == {
        "binding_group",
        "domain",
        "global",
    }
    assert o.STANZAS["binding"].parents == {"binding_group", "global"}
