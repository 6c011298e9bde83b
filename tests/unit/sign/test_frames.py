"""The signing pipe's frames, and a signing process's answer to each (pure: no process)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from relay.sign import frames
from relay.sign.frames import DONE, FAILED, PROFILES, SIGN, FrameError, Reader, frame
from relay.sign.keys import load_key
from relay.sign.settings import Profile, SigningSpec
from relay.sign.signer import sign_message
from relay.sign.worker import answer
from tests.support.dkim_tools import write_key

MESSAGE = b"From: <a@example.com>\r\nTo: <b@one.test>\r\nSubject: hi\r\n\r\nbody\r\n"


def test_frames_come_out_whole_whatever_the_chunks() -> None:
    sent = [(SIGN, 1, b"x" * 300), (DONE, 2**64 - 1, b""), (FAILED, 7, b"why")]
    stream = b"".join(frame(*item) for item in sent)
    for size in (1, 2, 13, len(stream)):
        reader, got = Reader(), []
        for start in range(0, len(stream), size):
            got += reader.feed(stream[start : start + size])
        assert got == sent


def test_garbage_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="unknown kind"):
        Reader().feed(frame(SIGN, 1, b"")[:4] + b"Z" + bytes(8))
    with pytest.raises(FrameError, match="at most"):
        Reader().feed((frames.MAX_FRAME + 1).to_bytes(4, "big") + b"S" + bytes(8))
    with pytest.raises(FrameError, match="a frame of 3 bytes"):
        Reader().feed((3).to_bytes(4, "big") + b"S" + bytes(8))


def test_profiles_and_keys_pickle_as_pem(tmp_path: Path) -> None:
    key = load_key(write_key(tmp_path / "k.pem", "ed25519"))
    spec = SigningSpec("p", None, "s", key, "relaxed", "relaxed")
    profile = Profile("p", {"example.com": spec}, spec)
    copy = pickle.loads(pickle.dumps(profile))
    assert copy.name == "p" and copy.domains["example.com"].selector == "s"
    assert copy.fallback is not None and copy.fallback.key.pem() == key.pem()
    assert copy.fallback.key.path == key.path
    signed = sign_message(MESSAGE, [copy], authenticated=False, now=1e9)
    assert signed.content == sign_message(MESSAGE, [profile], authenticated=False, now=1e9).content


def test_a_signing_process_answers_each_job(tmp_path: Path) -> None:
    key = load_key(write_key(tmp_path / "k.pem", "rsa"))
    good = (Profile("p", fallback=SigningSpec("p", None, "s", key, "relaxed", "relaxed")),)
    broken = (Profile("b", fallback=SigningSpec("b", None, "s", key, "nonsense", "relaxed")),)
    known: dict[int, object] = {}
    assert answer(known, PROFILES, 1, pickle.dumps(good)) == b""  # type: ignore[arg-type]
    assert answer(known, PROFILES, 2, pickle.dumps(broken)) == b""  # type: ignore[arg-type]

    [(kind, number, body)] = Reader().feed(
        answer(known, SIGN, 41, pickle.dumps((1, False, 1e9, MESSAGE)))  # type: ignore[arg-type]
    )
    added, signatures, unsigned, domain = pickle.loads(body)
    expected = sign_message(MESSAGE, good, authenticated=False, now=1e9)
    assert (kind, number) == (DONE, 41)
    assert added + MESSAGE == expected.content and added.startswith(b"DKIM-Signature:")
    assert (signatures, unsigned, domain) == (expected.signatures, None, "example.com")

    unsigned_job = pickle.dumps((1, False, 1e9, b"To: <b@one.test>\r\n\r\nx\r\n"))
    [(_, _, body)] = Reader().feed(answer(known, SIGN, 42, unsigned_job))  # type: ignore[arg-type]
    assert pickle.loads(body)[0] == b"" and "no From:" in pickle.loads(body)[2]

    for which, why in ((2, "KeyError"), (9, "KeyError: 9")):  # a bad canon; unknown profiles
        job = pickle.dumps((which, False, 1e9, MESSAGE))
        [(kind, number, body)] = Reader().feed(answer(known, SIGN, 43, job))  # type: ignore[arg-type]
        assert (kind, number) == (FAILED, 43) and why in body.decode()


def test_a_signing_process_keeps_the_newest_profile_sets(tmp_path: Path) -> None:
    key = load_key(write_key(tmp_path / "k.pem", "ed25519"))
    body = pickle.dumps((Profile("p", fallback=SigningSpec("p", None, "s", key)),))
    known: dict[int, object] = {}
    for number in range(1, frames.PROFILE_SETS + 7):
        answer(known, PROFILES, number, body)  # type: ignore[arg-type]
    assert list(known) == list(range(7, frames.PROFILE_SETS + 7))
