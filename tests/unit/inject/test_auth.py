from __future__ import annotations

from pathlib import Path

import pytest

from relay.inject.auth import (
    Credentials,
    CredentialsError,
    PasswordHash,
    hash_password,
    make_credentials_line,
)


def test_line_round_trip_and_verify() -> None:
    line = make_credentials_line("alice", "s3cret", n=2**10)
    user, _, encoded = line.partition(":")
    assert user == "alice" and encoded.startswith("scrypt$1024$8$1$")
    credentials = Credentials.parse(f"# comment\n\n{line}\n")
    assert len(credentials) == 1
    assert credentials.verify(b"alice", b"s3cret")
    assert not credentials.verify(b"alice", b"s3cret ")
    assert not credentials.verify(b"bob", b"s3cret")
    assert not credentials.verify(b"\xff", b"s3cret")


def test_each_hash_has_its_own_salt() -> None:
    assert hash_password("x", n=2**10) != hash_password("x", n=2**10)
    decoded = PasswordHash.decode(hash_password("x", n=2**10))
    assert decoded.matches(b"x") and len(decoded.salt) == 16 and len(decoded.key) == 32


@pytest.mark.parametrize("user", ["", "a:b", "a b", "a\nb"])
def test_bad_user_names(user: str) -> None:
    with pytest.raises(ValueError):
        make_credentials_line(user, "pw")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice\n", "creds:1: expected user:hash"),
        ("alice:plain\n", "creds:1: user 'alice'"),
        ("\nalice:scrypt$1000$8$1$AAAA$AAAA\n", "creds:2: user 'alice'"),  # N not a power of 2
        ("alice:scrypt$1024$8$1$!!$AAAA\n", "creds:1"),
    ],
)
def test_malformed_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(CredentialsError, match=message):
        Credentials.parse(text, source="creds")


def test_duplicate_user_is_an_error() -> None:
    line = make_credentials_line("alice", "pw", n=2**10)
    with pytest.raises(CredentialsError, match="listed twice"):
        Credentials.parse(f"{line}\n{line}\n", source="creds")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read"):
        Credentials.load(tmp_path / "nope")
