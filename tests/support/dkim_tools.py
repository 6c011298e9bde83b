"""DKIM test tools: keys written as `openssl genpkey` writes them, their TXT records for the
loopback DNS server, and dkimpy's verifier asking that server.

    path = write_key(tmp_path / "rsa.pem", "rsa")            # PKCS#8 PEM ("pkcs1" also)
    zone = {**txt_records({("s1", "example.com"): path})}   # for DnsServer(zone, ...)
    results = await verify_all(message, dns)                 # [True, True]: each signature
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import dkim
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.sign.keys import load_key
from tests.support.dns_server import DnsServer, Zone


def write_key(path: Path, kind: str = "rsa", bits: int = 2048) -> Path:
    """A fresh key in PEM: kind "rsa" (PKCS#8), "pkcs1" (RSA, PKCS#1) or "ed25519"."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    form = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if kind == "pkcs1"
        else serialization.PrivateFormat.PKCS8
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        private.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
    )
    return path


def txt_records(keys: Mapping[tuple[str, str], Path]) -> Zone:
    """Zone entries publishing each (selector, domain) -> key file, as relay prints them."""
    zone: Zone = {}
    for (selector, domain), path in keys.items():
        text = load_key(path).record_text()
        parts = " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))
        zone[f"{selector}._domainkey.{domain}"] = {"TXT": [parts]}
    return zone


def _verify_sync(message: bytes, port: int) -> list[bool]:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 3.0

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode("ascii"), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(b"".join(rdata.strings) for rdata in answer)

    verifier = dkim.DKIM(message)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(count):
        try:
            results.append(bool(verifier.verify(idx=index, dnsfunc=dnsfunc)))
        except dkim.DKIMException:  # e.g. a body hash mismatch: not a valid signature
            results.append(False)
    return results


async def verify_all(message: bytes, dns_server: DnsServer) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of `message`, top first, with the keys from
    the loopback DNS server (run in a thread: the server answers on this event loop)."""
    return await asyncio.to_thread(_verify_sync, message, dns_server.port)


def signature_tags(message: bytes, index: int = 0) -> dict[str, str]:
    """The tags of the index-th DKIM-Signature field, white space removed."""
    verifier = dkim.DKIM(message)
    values = [v for n, v in verifier.headers if n.lower() == b"dkim-signature"]
    text = b"".join(values[index].split()).decode("ascii")
    return dict(item.split("=", 1) for item in text.split(";") if item)
