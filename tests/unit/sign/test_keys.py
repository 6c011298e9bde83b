"""Key files: the PEM forms openssl genpkey writes load; anything else is a KeyFileError
naming the file and what to do."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from relay.sign.keys import ED25519_SHA256, RSA_SHA256, KeyFileError, load_key, txt_record
from tests.support.dkim_tools import write_key


@pytest.mark.parametrize("kind", ["rsa", "pkcs1"])
def test_rsa_pkcs8_and_pkcs1(tmp_path: Path, kind: str) -> None:
    key = load_key(write_key(tmp_path / "k.pem", kind), RSA_SHA256)
    assert (key.kind, key.bits, key.algorithm) == ("rsa", 2048, RSA_SHA256)
    public = serialization.load_der_public_key(base64.b64decode(key.public_value()))
    assert public.public_numbers() == key.private.public_key().public_numbers()  # type: ignore[union-attr]


def test_ed25519(tmp_path: Path) -> None:
    key = load_key(write_key(tmp_path / "k.pem", "ed25519"), ED25519_SHA256)
    assert key.kind == "ed25519"
    raw = base64.b64decode(key.public_value())
    assert len(raw) == 32  # RFC 8463: the bare key, not an SPKI structure
    assert isinstance(key.private, ed25519.Ed25519PrivateKey)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
@pytest.mark.parametrize(
    "args",
    [["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], ["-algorithm", "ed25519"]],
)
def test_keys_made_by_openssl_genpkey(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", *args, "-out", str(path)], check=True, timeout=60)
    assert load_key(path).bits in (2048, 256)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"key file .*nope.pem does not exist"):
        load_key(tmp_path / "nope.pem")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot be read"):
        load_key(tmp_path)  # a directory: root can read any file, but not a directory


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match=r"is not a PEM private key.*openssl genpkey"):
        load_key(path)


def test_encrypted_file(tmp_path: Path) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "k.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(KeyFileError, match="encrypted"):
        load_key(path)


def test_wrong_key_type(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="RSA or Ed25519"):
        load_key(path)


def test_key_that_does_not_match_the_digest(tmp_path: Path) -> None:
    path = write_key(tmp_path / "k.pem", "ed25519")
    with pytest.raises(KeyFileError, match="holds an ed25519 key but digest is rsa-sha256"):
        load_key(path, RSA_SHA256)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
def test_short_rsa_key(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    done = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("this openssl refuses 512-bit keys")
    path.write_bytes(done.stdout)
    with pytest.raises(KeyFileError, match=r"512 bits.*RFC 8301"):
        load_key(path)


def test_txt_record_splits_long_text(tmp_path: Path) -> None:
    key = load_key(write_key(tmp_path / "k.pem"))
    line = txt_record("s1", "example.com", key)
    assert line.startswith('s1._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=MII')
    strings = line.split('"')[1::2]
    assert all(len(s) <= 255 for s in strings) and len(strings) == 2
    assert "".join(strings) == key.record_text()
