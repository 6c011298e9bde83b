"""Signatures relay makes verify with dkimpy, the keys published as TXT records on the
tests' loopback DNS server: rsa-sha256 and ed25519-sha256, simple and relaxed, the bodies
that trip canonicalization up, two signatures side by side, oversigning and lifetime."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.sign.keys import SigningKey, load_key
from relay.sign.settings import AUTH_USER, Profile, SigningSpec
from relay.sign.signer import sign_message
from tests.support.dkim_tools import signature_tags, txt_records, verify_all, write_key
from tests.support.fixtures import DnsServerFactory

HEADERS = (
    b"Received: from client (127.0.0.1)\r\n\tby relay.test with ESMTP; Tue, 1 Dec 2026\r\n"
    b"From: Sender <news@example.com>\r\n"
    b"To: rcpt@one.test\r\n"
    b"Subject:   folded\r\n  \tsubject   line  \r\n"
    b"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
)
BODIES = {
    "plain": b"Hello.\r\n",
    "trailing blank lines": b"Hello.\r\n\r\n\r\n\r\n",
    "only blank lines": b"\r\n\r\n",
    "empty": b"",
    "white space at line ends": b"a  \t\r\n b \r\n\t\r\n",
    "long lines": b"x" * 998 + b"\r\n" + b"y " * 499 + b"\r\n",
    "8-bit": "Grüße, été, 日本語\r\n".encode(),
    "dot and from lines": b".\r\n..leading dot\r\nFrom the start\r\n",
    "blank lines inside": b"a\r\n\r\n\r\nb\r\n",
}
CANONS = [
    ("simple", "simple"),
    ("simple", "relaxed"),
    ("relaxed", "simple"),
    ("relaxed", "relaxed"),
]
HEADERLIST = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    return {
        "rsa": write_key(directory / "rsa.pem", "rsa"),
        "pkcs1": write_key(directory / "pkcs1.pem", "pkcs1"),
        "ed25519": write_key(directory / "ed.pem", "ed25519"),
    }


def spec(key: SigningKey, selector: str, canons: tuple[str, str], **kwargs: object) -> SigningSpec:
    return SigningSpec(
        profile=selector,
        domain=None,
        selector=selector,
        key=key,
        header_canon=canons[0],
        body_canon=canons[1],
        headers=HEADERLIST,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("kind", ["rsa", "pkcs1", "ed25519"])
@pytest.mark.parametrize("canons", CANONS, ids="/".join)
async def test_every_body_verifies(
    dns_server: DnsServerFactory, keys: dict[str, Path], kind: str, canons: tuple[str, str]
) -> None:
    dns = await dns_server(txt_records({("sel", "example.com"): keys[kind]}))
    key = load_key(keys[kind])
    profile = Profile("p", fallback=spec(key, "sel", canons))
    for name, body in BODIES.items():
        signed = sign_message(HEADERS + b"\r\n" + body, [profile], authenticated=False, now=1e9)
        assert signed.signatures == (f"a={key.algorithm} d=example.com s=sel",)
        assert await verify_all(signed.content, dns) == [True], name
        tags = signature_tags(signed.content)
        assert tags["c"] == "/".join(canons) and tags["d"] == "example.com"


async def test_rsa_and_ed25519_side_by_side(
    dns_server: DnsServerFactory, keys: dict[str, Path]
) -> None:
    dns = await dns_server(
        txt_records({("r1", "example.com"): keys["rsa"], ("e1", "example.com"): keys["ed25519"]})
    )
    profiles = [
        Profile("rsa", fallback=spec(load_key(keys["rsa"]), "r1", ("relaxed", "relaxed"))),
        Profile("ed", fallback=spec(load_key(keys["ed25519"]), "e1", ("relaxed", "simple"))),
    ]
    signed = sign_message(HEADERS + b"\r\nboth\r\n", profiles, authenticated=False, now=1e9)
    assert await verify_all(signed.content, dns) == [True, True]
    assert signature_tags(signed.content, 0)["a"] == "rsa-sha256"
    assert signature_tags(signed.content, 1)["a"] == "ed25519-sha256"
    assert "dkim-signature" not in signature_tags(signed.content, 0)["h"]


async def test_a_changed_message_fails(dns_server: DnsServerFactory, keys: dict[str, Path]) -> None:
    dns = await dns_server(txt_records({("sel", "example.com"): keys["ed25519"]}))
    profile = Profile("p", fallback=spec(load_key(keys["ed25519"]), "sel", ("relaxed", "relaxed")))
    signed = sign_message(HEADERS + b"\r\nbody\r\n", [profile], authenticated=False, now=1e9)
    assert await verify_all(signed.content.replace(b"body", b"bodx"), dns) == [False]
    assert await verify_all(signed.content.replace(b"folded", b"Folded"), dns) == [False]


async def test_oversigning_refuses_an_added_field(
    dns_server: DnsServerFactory, keys: dict[str, Path]
) -> None:
    dns = await dns_server(txt_records({("sel", "example.com"): keys["ed25519"]}))
    key = load_key(keys["ed25519"])
    plain = Profile("p", fallback=spec(key, "sel", ("relaxed", "relaxed")))
    over = Profile(
        "p", fallback=spec(key, "sel", ("relaxed", "relaxed"), oversign=("from", "reply-to"))
    )
    message = HEADERS + b"\r\nbody\r\n"
    added = b"Reply-To: attacker@evil.test\r\n"
    for profile, expected in ((plain, [True]), (over, [False])):
        signed = sign_message(message, [profile], authenticated=False, now=1e9).content
        assert await verify_all(signed, dns) == [True]
        top, _, rest = signed.partition(b"Received:")
        assert await verify_all(top + added + b"Received:" + rest, dns) == expected
    tags = signature_tags(sign_message(message, [over], authenticated=False, now=1e9).content)
    assert tags["h"].split(":").count("from") == 2 and "reply-to" in tags["h"]


async def test_lifetime_sets_x(dns_server: DnsServerFactory, keys: dict[str, Path]) -> None:
    import time

    dns = await dns_server(txt_records({("sel", "example.com"): keys["rsa"]}))
    profile = Profile(
        "p", fallback=spec(load_key(keys["rsa"]), "sel", ("relaxed", "relaxed"), lifetime=7200.0)
    )
    now = time.time()
    signed = sign_message(HEADERS + b"\r\nbody\r\n", [profile], authenticated=False, now=now)
    tags = signature_tags(signed.content)
    assert int(tags["x"]) - int(tags["t"]) == 7200 and int(tags["t"]) == int(now)
    assert await verify_all(signed.content, dns) == [True]


def test_no_key_for_the_from_domain_leaves_it_unsigned(keys: dict[str, Path]) -> None:
    key = load_key(keys["rsa"])
    profile = Profile(
        "p", domains={"other.test": spec(key, "s", ("simple", "simple"))}, fallback=None
    )
    message = HEADERS + b"\r\nbody\r\n"
    signed = sign_message(message, [profile], authenticated=False, now=1e9)
    assert signed.content == message and signed.signatures == ()
    assert signed.unsigned == "no DKIM key for the From: domain example.com"
    no_from = sign_message(b"To: a@b.test\r\n\r\nx\r\n", [profile], authenticated=False, now=1)
    assert no_from.unsigned is not None and "no From:" in no_from.unsigned


def test_sign_condition_auth_user(keys: dict[str, Path]) -> None:
    profile = Profile(
        "p",
        fallback=spec(load_key(keys["ed25519"]), "s", ("simple", "simple"), condition=AUTH_USER),
    )
    message = HEADERS + b"\r\nbody\r\n"
    assert sign_message(message, [profile], authenticated=False, now=1).content == message
    assert sign_message(message, [profile], authenticated=False, now=1).unsigned is None
    assert sign_message(message, [profile], authenticated=True, now=1).signatures
