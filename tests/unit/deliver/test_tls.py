from __future__ import annotations

import ssl

import pytest

from relay.deliver import DeliverySettings
from relay.deliver.tls import TlsSettings, parse_tls_protocols, peer_matches

V = ssl.TLSVersion


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("+ALL", (V.SSLv3, V.TLSv1_3)),
        (":ALL:-SSLv3", (V.TLSv1, V.TLSv1_3)),
        ("+ALL:-SSLv3:-TLSv1.0:-TLSv1.1", (V.TLSv1_2, V.TLSv1_3)),
        ("TLSv1.2", (V.TLSv1_2, V.TLSv1_2)),
        ("+SSLv2:+TLSv1.2:+TLSv1.3", (V.TLSv1_2, V.TLSv1_3)),
    ],
)
def test_parse_tls_protocols(text: str | None, expected: object) -> None:
    assert parse_tls_protocols(text) == expected


@pytest.mark.parametrize("text", ["+TLSv9", "+ALL:-ALL"])
def test_parse_tls_protocols_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_tls_protocols(text)


CERT = {
    "subject": ((("commonName", "cn.example.test"),),),
    "subjectAltName": (
        ("DNS", "mx.example.test"),
        ("DNS", "*.wild.test"),
        ("IP Address", "192.0.2.7"),
    ),
}


@pytest.mark.parametrize(
    ("names", "ok"),
    [
        (("mx.example.test",), True),
        (("MX.Example.Test.",), True),
        (("other.test", "mx.example.test"), True),  # MX name or domain
        (("a.wild.test",), True),
        (("a.b.wild.test",), False),
        (("wild.test",), False),
        (("cn.example.test",), False),  # CN ignored when DNS SANs exist
        (("192.0.2.7",), True),
        (("192.0.2.8",), False),
    ],
)
def test_peer_matches(names: tuple[str, ...], ok: bool) -> None:
    assert peer_matches(CERT, names) is ok


def test_peer_matches_falls_back_to_cn_without_dns_sans() -> None:
    cert = {"subject": ((("commonName", "mx.cn.test"),),)}
    assert peer_matches(cert, ("mx.cn.test",))
    assert not peer_matches({}, ("mx.cn.test",))


def test_settings_build_contexts() -> None:
    none = TlsSettings.of(DeliverySettings(tls_verify="no", tls_certificate="none")).build()
    assert none.verify_mode == ssl.CERT_NONE
    assert not none.check_hostname
    strict = TlsSettings.of(
        DeliverySettings(tls_verify="host", tls_protocols="+ALL:-SSLv3:-TLSv1.0:-TLSv1.1")
    ).build()
    assert strict.verify_mode == ssl.CERT_REQUIRED
    assert strict.minimum_version == V.TLSv1_2
    assert TlsSettings.of(DeliverySettings(tls_certificate="none")).certificate is None
