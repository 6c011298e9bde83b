"""Sign one message with every profile that has a key for its From: domain.

Pure apart from the key operations; `pool.py` runs it in a signing process. The
signatures go on top of the message, the first profile's first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.sign.headers import from_domain, index, split
from relay.sign.settings import AUTH_USER, Profile
from relay.sign.signature import body_hash, signature_field


@dataclass(frozen=True, slots=True)
class Signed:
    """content: the message with its signatures on top (unchanged when none).
    signatures: one "a=... d=... s=..." line per signature added.
    unsigned: why a message that should have been signed was not (no key for its From:
        domain, no From: domain); None when signed, or left unsigned by sign_condition."""

    content: bytes
    signatures: tuple[str, ...] = ()
    unsigned: str | None = None
    domain: str | None = None


def sign_message(
    content: bytes, profiles: Sequence[Profile], *, authenticated: bool, now: float
) -> Signed:
    fields, body = split(content)
    domain = from_domain(fields)
    if domain is None:
        return Signed(content, unsigned="no From: address with a domain to sign for")
    stamp = int(now)
    added: list[bytes] = []
    described: list[str] = []
    hashes: dict[str, str] = {}
    keyed = False
    found = None
    for profile in profiles:
        spec = profile.spec_for(domain)
        if spec is None:
            continue
        keyed = True
        if spec.condition == AUTH_USER and not authenticated:
            continue
        bh = hashes.get(spec.body_canon)
        if bh is None:
            bh = hashes[spec.body_canon] = body_hash(body, spec.body_canon)
        if found is None:
            found = index(fields)
        added.append(signature_field(spec, domain, found, bh, stamp))
        described.append(f"a={spec.algorithm} d={spec.domain or domain} s={spec.selector}")
    if not keyed:
        return Signed(content, unsigned=f"no DKIM key for the From: domain {domain}", domain=domain)
    if not added:
        return Signed(content, domain=domain)
    return Signed(b"".join((*added, content)), tuple(described), domain=domain)
