"""DKIM private keys from PEM files, and the DNS TXT record that publishes each.

Keys as `openssl genpkey` writes them: PKCS#8 (`BEGIN PRIVATE KEY`) for RSA and Ed25519,
and for RSA also PKCS#1 (`BEGIN RSA PRIVATE KEY`). Unencrypted: relay starts unattended.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
ALGORITHMS = (RSA_SHA256, ED25519_SHA256)
MIN_RSA_BITS = 1024  # RFC 8301: verifiers refuse shorter keys

_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class KeyFileError(Exception):
    """A key file that is missing, unreadable or not a usable DKIM key; the message says
    which file and what to do."""


@dataclass(frozen=True, slots=True, eq=False)
class SigningKey:
    path: str
    kind: str  # "rsa" or "ed25519" (the k= tag)
    bits: int
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @property
    def algorithm(self) -> str:
        return RSA_SHA256 if self.kind == "rsa" else ED25519_SHA256

    def sign(self, data: bytes) -> bytes:
        """The signature over `data` (the canonicalized header fields): RSASSA-PKCS1-v1_5
        with SHA-256, or Ed25519 over the SHA-256 digest (RFC 8463 section 3)."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, _PKCS1V15, _SHA256)
        return self.private.sign(hashlib.sha256(data).digest())

    def pem(self) -> bytes:
        """The private key as PKCS#8 PEM (what a signing process loads it from)."""
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __reduce__(self) -> tuple[object, tuple[str, bytes]]:
        """Pickled as its path and PEM (relay's own signing processes: pool.py)."""
        return key_from_pem, (self.path, self.pem())

    def public_value(self) -> str:
        """The p= tag: base64 of the SubjectPublicKeyInfo (RSA) or of the raw 32-byte key
        (Ed25519, RFC 8463 section 4.2)."""
        public = self.private.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return base64.b64encode(raw).decode("ascii")

    def record_text(self) -> str:
        """The TXT record's text: `v=DKIM1; k=rsa; p=...`."""
        return f"v=DKIM1; k={self.kind}; p={self.public_value()}"


def load_key(path: str | Path, algorithm: str | None = None) -> SigningKey:
    """Load a PEM private key; `algorithm` (rsa-sha256 / ed25519-sha256), when given, must
    match the key's type. Raises KeyFileError naming the file and the problem."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file {name} does not exist") from None
    except PermissionError:
        raise KeyFileError(f"key file {name} is not readable by this user") from None
    except OSError as err:
        raise KeyFileError(f"key file {name} cannot be read: {err.strerror or err}") from None
    key = key_from_pem(name, data)
    if algorithm is not None and key.algorithm != algorithm:
        raise KeyFileError(
            f"key file {name} holds an {key.kind} key but digest is {algorithm}; "
            f"set digest = {key.algorithm!r} or use an {algorithm.split('-')[0]} key"
        )
    return key


def key_from_pem(name: str, data: bytes) -> SigningKey:
    """The key in PEM `data` (read from the file `name`). Raises KeyFileError."""
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(
            f"key file {name} is encrypted; relay needs an unencrypted key "
            "(openssl pkey -in KEY -out PLAIN)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"key file {name} is not a PEM private key (or it is damaged); make one with "
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
            "(or -algorithm ed25519)"
        ) from None
    if isinstance(private, rsa.RSAPrivateKey):
        key = SigningKey(name, "rsa", private.key_size, private)
        if key.bits < MIN_RSA_BITS:
            raise KeyFileError(
                f"key file {name}: an RSA key of {key.bits} bits; receivers refuse keys "
                f"under {MIN_RSA_BITS} bits (RFC 8301), use 2048"
            )
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        key = SigningKey(name, "ed25519", 256, private)
    else:
        raise KeyFileError(
            f"key file {name} holds a {type(private).__name__}; DKIM signs with RSA or Ed25519"
        )
    return key


def txt_record(selector: str, domain: str, key: SigningKey) -> str:
    """A zone-file line publishing `key`, split into strings of at most 255 characters."""
    text = key.record_text()
    parts = [text[i : i + 255] for i in range(0, len(text), 255)]
    quoted = " ".join(f'"{part}"' for part in parts)
    return f"{selector}._domainkey.{domain}. IN TXT ( {quoted} )"
