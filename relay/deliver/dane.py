"""DANE for SMTP (RFC 7672): TLSA records, whether they apply, and matching a server's
certificate chain against them.

The pure part (`parse_tlsa`, `usable_records`, `verify_chain`) takes records and DER
certificates; `dane_for_host` adds the lookups through relay's resolver, trusting only
answers that carry the AD flag (MX, address and TLSA alike), as Postfix does.

Usages: DANE-EE (3) matches the leaf certificate alone (no name or expiry check, RFC 7672
3.1.1); DANE-TA (2) matches a certificate of the chain the server sent, which must issue
the chain down to the leaf (signatures checked), and the leaf must name the MX host and be
within its validity (RFC 7672 3.1.2, 3.2). PKIX usages (0, 1) are unusable for SMTP.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from relay.deliver.dns import DnsResolver, LookupStatus

__all__ = [
    "DaneCheck",
    "DaneState",
    "HostDane",
    "TlsaRecord",
    "dane_for_host",
    "names_match",
    "parse_tlsa",
    "tlsa_name",
    "usable_records",
    "verify_chain",
]

DANE_TA = 2
DANE_EE = 3
_DIGEST_SIZE = {1: 32, 2: 64}


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    usage: int
    selector: int
    mtype: int
    data: bytes

    def matches(self, der: bytes) -> bool:
        """Whether one DER certificate matches this record's selector and matching type."""
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return False
        if self.selector == 0:
            selected = der
        else:
            selected = cert.public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
        if self.mtype == 1:
            selected = hashlib.sha256(selected).digest()
        elif self.mtype == 2:
            selected = hashlib.sha512(selected).digest()
        return selected == self.data


def tlsa_name(host: str, port: int) -> str:
    return f"_{port}._tcp.{host.rstrip('.').lower()}"


def parse_tlsa(text: str) -> TlsaRecord | None:
    """`"usage selector mtype hex"` (as relay's resolver gives TLSA) -> record; None if
    malformed."""
    parts = text.split()
    if len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
        return None
    try:
        data = bytes.fromhex("".join(parts[3:]))
    except ValueError:
        return None
    return TlsaRecord(int(parts[0]), int(parts[1]), int(parts[2]), data)


def usable_records(records: Iterable[TlsaRecord]) -> tuple[TlsaRecord, ...]:
    """The records SMTP can use (RFC 7672 3.1): usage 2 or 3, selector 0 or 1, matching
    type 0, 1 (SHA-256) or 2 (SHA-512) with a digest of the right length."""
    return tuple(
        r
        for r in records
        if r.usage in (DANE_TA, DANE_EE)
        and r.selector in (0, 1)
        and r.mtype in (0, 1, 2)
        and (r.mtype == 0 or len(r.data) == _DIGEST_SIZE[r.mtype])
        and r.data
    )


@dataclass(frozen=True, slots=True)
class DaneCheck:
    ok: bool
    failure: str | None = None  # RFC 8460 result type when not ok
    detail: str = ""


def verify_chain(
    records: Sequence[TlsaRecord],
    chain: Sequence[bytes],
    names: Sequence[str],
    now: datetime.datetime,
) -> DaneCheck:
    """Does the server's chain (DER, leaf first, as sent) satisfy one usable record?"""
    if not chain:
        return DaneCheck(False, "validation-failure", "the server sent no certificate")
    leaf_der = chain[0]
    if any(r.usage == DANE_EE and r.matches(leaf_der) for r in records):
        return DaneCheck(True)
    anchors = [r for r in records if r.usage == DANE_TA]
    if not anchors:
        return DaneCheck(False, "validation-failure", "no DANE-EE record matches the certificate")
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as exc:
        return DaneCheck(False, "validation-failure", f"unreadable certificate: {exc}")
    for index in range(len(chain)):
        if not any(r.matches(chain[index]) for r in anchors):
            continue
        if not _issued_down(certs[: index + 1]):
            continue
        leaf = certs[0]
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return DaneCheck(False, "certificate-expired", "the leaf certificate is not valid now")
        if not names_match(leaf, names):
            wanted = " or ".join(names)
            return DaneCheck(
                False, "certificate-host-mismatch", f"the certificate does not name {wanted}"
            )
        return DaneCheck(True)
    return DaneCheck(False, "validation-failure", "no TLSA record matches the certificate chain")


def _issued_down(certs: Sequence[x509.Certificate]) -> bool:
    """certs[k] is issued (signed) by certs[k+1] all the way up."""
    for child, parent in itertools.pairwise(certs):
        try:
            child.verify_directly_issued_by(parent)
        except (InvalidSignature, ValueError, TypeError):
            return False
    return True


def names_match(cert: x509.Certificate, names: Sequence[str]) -> bool:
    """Whether a certificate's DNS subjectAltNames (or, without any, its CN) name one of
    `names`; `*.` matches exactly one label."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        patterns = [str(n).lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        patterns = [
            str(a.value).lower() for a in cert.subject.get_attributes_for_oid(x509.OID_COMMON_NAME)
        ]
    for name in names:
        wanted = name.rstrip(".").lower()
        for pattern in patterns:
            if pattern == wanted:
                return True
            if pattern.startswith("*."):
                head, dot, rest = wanted.partition(".")
                if head and dot and rest == pattern[2:]:
                    return True
    return False


class DaneState(enum.Enum):
    NONE = "none"  # DANE does not apply: insecure or no TLSA records
    USABLE = "usable"  # STARTTLS mandatory, the certificate must match
    UNUSABLE = "unusable"  # secure TLSA records, none usable: opportunistic TLS
    TEMPFAIL = "tempfail"  # secure names, the TLSA lookup failed: wait (RFC 7672 2.2)


@dataclass(frozen=True, slots=True)
class HostDane:
    state: DaneState
    records: tuple[TlsaRecord, ...] = ()
    failure: str | None = None  # RFC 8460 result type for UNUSABLE / TEMPFAIL
    detail: str = ""


async def dane_for_host(
    resolver: DnsResolver, host: str, port: int, mx_authenticated: bool
) -> HostDane:
    """What DANE says for one MX host (RFC 7672 2.2): only when the MX answer and the
    host's address answer are both authenticated are its TLSA records looked up, and only
    an authenticated TLSA answer counts."""
    if not mx_authenticated:
        return HostDane(DaneState.NONE, detail="MX answer not authenticated")
    addresses = await resolver.addresses(host)
    if addresses.status is not LookupStatus.OK or not addresses.authenticated:
        return HostDane(DaneState.NONE, detail=f"address of {host} not authenticated")
    name = tlsa_name(host, port)
    answer = await resolver.tlsa(name)
    if answer.status is LookupStatus.TEMPFAIL:
        return HostDane(
            DaneState.TEMPFAIL, failure="dnssec-invalid", detail=f"TLSA {name}: {answer.detail}"
        )
    if answer.status is not LookupStatus.OK:
        return HostDane(DaneState.NONE, detail=f"no TLSA records at {name}")
    if not answer.authenticated:
        return HostDane(DaneState.NONE, detail=f"TLSA {name} not authenticated (no AD)")
    parsed = [r for r in (parse_tlsa(t) for t in answer.texts) if r is not None]
    usable = usable_records(parsed)
    if not usable:
        return HostDane(
            DaneState.UNUSABLE, failure="tlsa-invalid", detail=f"no usable TLSA record at {name}"
        )
    return HostDane(DaneState.USABLE, usable)
