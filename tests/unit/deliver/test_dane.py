"""DANE pure core: TLSA parsing, usability, and matching certificate chains (trustme)."""

from __future__ import annotations

import datetime
import hashlib

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from relay.deliver.dane import (
    TlsaRecord,
    parse_tlsa,
    tlsa_name,
    usable_records,
    verify_chain,
)

NOW = datetime.datetime.now(datetime.UTC)


def der_chain(leaf: trustme.LeafCert) -> list[bytes]:
    return [
        x509.load_pem_x509_certificate(pem.bytes()).public_bytes(Encoding.DER)
        for pem in leaf.cert_chain_pems
    ]


def spki(der: bytes) -> bytes:
    cert = x509.load_der_x509_certificate(der)
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def record(usage: int, selector: int, mtype: int, der: bytes) -> TlsaRecord:
    data = der if selector == 0 else spki(der)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return TlsaRecord(usage, selector, mtype, data)


def test_parse_and_name() -> None:
    assert parse_tlsa("3 1 1 ABCD ef01") == TlsaRecord(3, 1, 1, bytes.fromhex("abcdef01"))
    assert parse_tlsa("3 1") is None
    assert parse_tlsa("3 1 1 zz") is None
    assert tlsa_name("MX.Example.test.", 25) == "_25._tcp.mx.example.test"


def test_usable_records() -> None:
    ok = [TlsaRecord(3, 1, 1, b"x" * 32), TlsaRecord(2, 0, 2, b"y" * 64), TlsaRecord(3, 0, 0, b"z")]
    bad = [
        TlsaRecord(0, 1, 1, b"x" * 32),  # PKIX-TA: unusable for SMTP
        TlsaRecord(1, 1, 1, b"x" * 32),  # PKIX-EE
        TlsaRecord(3, 2, 1, b"x" * 32),  # selector
        TlsaRecord(3, 1, 3, b"x" * 32),  # matching type
        TlsaRecord(3, 1, 1, b"x" * 31),  # digest length
        TlsaRecord(3, 0, 0, b""),
    ]
    assert usable_records(ok + bad) == tuple(ok)


@pytest.mark.parametrize(("selector", "mtype"), [(s, m) for s in (0, 1) for m in (0, 1, 2)])
def test_dane_ee_matches_leaf_whatever_its_name(selector: int, mtype: int) -> None:
    leaf = der_chain(trustme.CA().issue_cert("other.test"))[0]
    # DANE-EE: no name check, no CA (RFC 7672 3.1.1)
    assert verify_chain([record(3, selector, mtype, leaf)], [leaf], ["mx.test"], NOW).ok


def test_dane_ee_mismatch() -> None:
    leaf = der_chain(trustme.CA().issue_cert("mx.test"))[0]
    other = der_chain(trustme.CA().issue_cert("mx.test"))[0]
    check = verify_chain([record(3, 1, 1, other)], [leaf], ["mx.test"], NOW)
    assert not check.ok and check.failure == "validation-failure"
    assert not verify_chain([record(3, 1, 1, leaf)], [], ["mx.test"], NOW).ok


def test_dane_ta_intermediate_in_chain() -> None:
    root = trustme.CA()
    intermediate = root.create_child_ca()
    chain = der_chain(intermediate.issue_cert("mx.test"))
    assert len(chain) == 2
    ta = record(2, 1, 1, chain[1])
    assert verify_chain([ta], chain, ["mx.test"], NOW).ok
    # the name must match for DANE-TA
    check = verify_chain([ta], chain, ["mx.other.test"], NOW)
    assert check.failure == "certificate-host-mismatch"
    # a leaf past its notAfter
    soon = NOW + datetime.timedelta(days=1)
    short = der_chain(intermediate.issue_cert("mx.test", not_after=soon))
    later = soon + datetime.timedelta(days=1)
    assert verify_chain([ta], short, ["mx.test"], NOW).ok
    assert verify_chain([ta], short, ["mx.test"], later).failure == "certificate-expired"


def test_dane_ta_not_the_issuer() -> None:
    stranger = trustme.CA().create_child_ca()
    chain = der_chain(trustme.CA().create_child_ca().issue_cert("mx.test"))
    strange = der_chain(stranger.issue_cert("x.test"))[1]
    # a TA record for a CA the server did send but that did not sign the leaf
    forged = [chain[0], strange]
    check = verify_chain([record(2, 0, 1, strange)], forged, ["mx.test"], NOW)
    assert not check.ok and check.failure == "validation-failure"
