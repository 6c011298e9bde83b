"""A signing process: `python -m relay.sign.worker`, started by relay (pool.py), never by
hand. It reads frames (frames.py) on stdin, signs each message with `sign_message` and
writes the fields to add on stdout, and exits when stdin closes (relay stopped or died).

Answers go back in batches: those ready when nothing more has been read, or when the
oldest has waited LINGER (an RSA-2048 signature takes 0.25-0.8 ms, so a chunk of many jobs
is not held until its last is signed). A job that fails is answered FAILED, alone; bytes that
are not frames end the process (relay fails what it had sent, and starts another).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from collections.abc import Sequence

from relay.sign.frames import DONE, FAILED, PROFILE_SETS, PROFILES, SIGN, Reader, frame
from relay.sign.settings import Profile
from relay.sign.signer import sign_message

CHUNK = 1 << 20
LINGER = 0.0005  # seconds an answer waits at most for others to go back with it


def answer(profiles: dict[int, Sequence[Profile]], kind: bytes, number: int, body: bytes) -> bytes:
    """The frame answering one job (b"" for a PROFILES frame, which is remembered)."""
    if kind == PROFILES:
        profiles[number] = pickle.loads(body)
        while len(profiles) > PROFILE_SETS:  # the oldest: relay has numbered others since
            del profiles[next(iter(profiles))]
        return b""
    if kind != SIGN:
        return frame(FAILED, number, f"a signing process got a {kind!r} frame".encode())
    try:
        which, authenticated, now, content = pickle.loads(body)
        signed = sign_message(content, profiles[which], authenticated=authenticated, now=now)
        added = signed.content[: len(signed.content) - len(content)] if signed.signatures else b""
        result = (added, signed.signatures, signed.unsigned, signed.domain)
        return frame(DONE, number, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
    except Exception as error:  # this job's failure, not the process's
        text = f"{type(error).__name__}: {error}"
        return frame(FAILED, number, text.encode("utf-8", "replace"))


def serve(incoming: int = 0, outgoing: int = 1) -> int:
    reader = Reader()
    profiles: dict[int, Sequence[Profile]] = {}
    while True:
        chunk = os.read(incoming, CHUNK)
        if not chunk:
            return 0
        held: list[bytes] = []
        since = 0.0
        for job in reader.feed(chunk):
            if not held:
                since = time.monotonic()
            held.append(answer(profiles, *job))
            if time.monotonic() - since >= LINGER:
                write_all(outgoing, b"".join(held))
                held = []
        if held:
            write_all(outgoing, b"".join(held))


def write_all(outgoing: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(outgoing, view) :]


def main() -> int:
    # Ctrl-C in a terminal reaches the whole process group: relay stops and closes the
    # pipe, which ends this process; it has nothing of its own to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outgoing = os.dup(1)
    os.dup2(2, 1)  # anything printed by mistake goes to stderr, not into the frames
    sys.stdout = sys.stderr
    return serve(0, outgoing)


if __name__ == "__main__":
    raise SystemExit(main())
