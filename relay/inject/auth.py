"""SMTP AUTH credentials: a flat file of `user:hash` lines.

File format (one account per line; blank lines and lines starting with `#` ignored):

    alice:scrypt$16384$8$1$<salt, base64>$<key, base64>

The hash is hashlib's scrypt (RFC 7914) with the cost parameters N, r, p stored in the
line, a random 16-octet salt and a 32-octet key. Make a line with
`make_credentials_line("alice", "secret")` (or `python -m relay.inject.auth alice`).
Verification compares in constant time and spends the same work for unknown users.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import sys
from dataclasses import dataclass
from pathlib import Path

SCHEME = "scrypt"
DEFAULT_N = 2**14
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
_MAX_N = 2**20


class CredentialsError(ValueError):
    """The credentials file is malformed; the message names file and line."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def matches(self, password: bytes) -> bool:
        return hmac.compare_digest(self.key, _derive(password, self.salt, self.n, self.r, self.p))

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        key = base64.b64encode(self.key).decode("ascii")
        return f"{SCHEME}${self.n}${self.r}${self.p}${salt}${key}"

    @classmethod
    def decode(cls, text: str) -> PasswordHash:
        parts = text.split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError(f"expected {SCHEME}$N$r$p$salt$key")
        try:
            n, r, p = (int(x) for x in parts[1:4])
            salt = base64.b64decode(parts[4], validate=True)
            key = base64.b64decode(parts[5], validate=True)
        except (ValueError, binascii.Error) as exc:
            raise ValueError(f"bad scrypt parameters: {exc}") from exc
        if n < 2 or n > _MAX_N or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
            raise ValueError("scrypt N must be a power of two <= 2**20, r 1-32, p 1-16")
        if not salt or not key:
            raise ValueError("empty salt or key")
        return cls(n, r, p, salt, key)


def hash_password(
    password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    salt = os.urandom(SALT_BYTES)
    return PasswordHash(n, r, p, salt, _derive(password.encode(), salt, n, r, p)).encode()


def make_credentials_line(user: str, password: str, *, n: int = DEFAULT_N) -> str:
    """One line for the credentials file (without the newline)."""
    if not user or ":" in user or any(c.isspace() or ord(c) < 32 for c in user):
        raise ValueError("user names may not be empty or contain ':', spaces or controls")
    return f"{user}:{hash_password(password, n=n)}"


class Credentials:
    def __init__(self, accounts: dict[str, PasswordHash]) -> None:
        self._accounts = accounts
        self._dummy = PasswordHash(DEFAULT_N, DEFAULT_R, DEFAULT_P, b"\0" * SALT_BYTES, b"")

    def __len__(self) -> int:
        return len(self._accounts)

    @classmethod
    def parse(cls, text: str, *, source: str = "<credentials>") -> Credentials:
        accounts: dict[str, PasswordHash] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, encoded = line.partition(":")
            if not sep or not user:
                raise CredentialsError(f"{source}:{number}: expected user:hash")
            if user in accounts:
                raise CredentialsError(f"{source}:{number}: user {user!r} listed twice")
            try:
                accounts[user] = PasswordHash.decode(encoded)
            except ValueError as exc:
                raise CredentialsError(f"{source}:{number}: user {user!r}: {exc}") from exc
        return cls(accounts)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CredentialsError(f"{path}: cannot read credentials file: {exc}") from exc
        return cls.parse(text, source=str(path))

    def verify(self, user: bytes, password: bytes) -> bool:
        """CPU-heavy (scrypt): call it from a worker thread."""
        try:
            name = user.decode("utf-8")
        except UnicodeDecodeError:
            name = ""
        stored = self._accounts.get(name)
        if stored is None:
            self._dummy.matches(password)  # same work whether or not the user exists
            return False
        return stored.matches(password)


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + 1024 * 1024, dklen=KEY_BYTES
    )


if __name__ == "__main__":  # pragma: no cover
    import getpass

    if len(sys.argv) != 2:
        sys.exit("usage: python -m relay.inject.auth USER  (reads the password from the tty)")
    print(make_credentials_line(sys.argv[1], getpass.getpass()))
