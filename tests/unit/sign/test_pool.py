"""The signing processes (relay.sign.pool): real `python -m relay.sign.worker` processes
sign what the event loop sends them, a failing job fails alone, a process that dies costs
only the jobs it held (and is replaced), and a forked child starts processes of its own."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relay.sign.keys import SigningKey, load_key
from relay.sign.pool import SigningProcessError, pool_for, sign_in_pool
from relay.sign.settings import Profile, SigningSpec
from relay.sign.signer import sign_message
from tests.support.dkim_tools import write_key

MESSAGE = b"From: Sender <news@example.com>\r\nTo: rcpt@one.test\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return load_key(write_key(tmp_path_factory.mktemp("keys") / "rsa.pem", "rsa"))


def profiles(key: SigningKey, header_canon: str = "relaxed") -> tuple[Profile, ...]:
    return (Profile("p", fallback=SigningSpec("p", None, "s", key, header_canon, "relaxed")),)


def state(pid: int) -> str:
    """A process's state letter (R, S, T stopped, Z exited, X gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "X"


async def test_messages_are_signed_in_other_processes_while_the_loop_turns(
    key: SigningKey,
) -> None:
    chosen = profiles(key)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(
        *(sign_in_pool(MESSAGE, chosen, authenticated=False, now=1e9) for _ in range(60))
    )
    task.cancel()
    expected = sign_message(MESSAGE, chosen, authenticated=False, now=1e9)
    assert all(r == expected for r in results) and ticks > 60
    pids = pool_for(asyncio.get_running_loop()).pids()
    assert len(pids) >= 2 and os.getpid() not in pids
    assert {state(pid) for pid in pids} <= {"R", "S"}


async def test_a_failing_job_fails_alone(key: SigningKey) -> None:
    good, broken = profiles(key), profiles(key, header_canon="nonsense")
    futures = [
        sign_in_pool(MESSAGE, good if i != 3 else broken, authenticated=False, now=1)
        for i in range(40)
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[3], SigningProcessError)
    assert "signing failed: KeyError: 'nonsense'" in str(results[3])
    assert all(r.signatures for i, r in enumerate(results) if i != 3)  # type: ignore[union-attr]


async def test_a_killed_process_fails_only_its_jobs_and_is_replaced(key: SigningKey) -> None:
    chosen = profiles(key)
    pool = pool_for(asyncio.get_running_loop())
    await asyncio.gather(
        *(sign_in_pool(MESSAGE, chosen, authenticated=False, now=1) for _ in range(4))
    )
    before = pool.pids()
    for pid in before:  # stopped: the jobs sent next wait in them, unanswered
        os.kill(pid, signal.SIGSTOP)
    held = [sign_in_pool(MESSAGE, chosen, authenticated=False, now=1) for _ in range(6)]
    await asyncio.sleep(0.05)
    assert not any(f.done() for f in held)
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    results = await asyncio.wait_for(asyncio.gather(*held, return_exceptions=True), 10)
    assert all(isinstance(r, SigningProcessError) for r in results)
    assert "exited" in str(results[0])
    signed = await asyncio.wait_for(sign_in_pool(MESSAGE, chosen, authenticated=False, now=1), 30)
    assert signed.signatures  # a new process took the next job
    after = pool.pids()
    assert after and not set(after) & set(before)
    for _ in range(500):  # reaped, not left as zombies
        if {state(pid) for pid in before} == {"X"}:
            break
        await asyncio.sleep(0.02)
    assert {state(pid) for pid in before} == {"X"}


def test_the_processes_exit_when_relay_goes(key: SigningKey, tmp_path: Path) -> None:
    """A relay killed with SIGKILL leaves no signing process behind: each sees its pipe
    close and exits."""
    script = (
        "import asyncio, pickle, sys\n"
        "from relay.sign.pool import pool_for, sign_in_pool\n"
        "profiles = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "async def main():\n"
        "    await sign_in_pool(b'From: a@b.test\\r\\n\\r\\nx\\r\\n', profiles,\n"
        "                       authenticated=False, now=1)\n"
        "    print(*pool_for(asyncio.get_running_loop()).pids(), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    (tmp_path / "profiles").write_bytes(pickle.dumps(profiles(key)))
    relay = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "profiles")], stdout=subprocess.PIPE
    )
    try:
        assert relay.stdout is not None
        pids = [int(p) for p in relay.stdout.readline().split()]
        assert len(pids) >= 2 and all(state(pid) in "RS" for pid in pids)
    finally:
        relay.kill()
        relay.wait()
    deadline = time.monotonic() + 10
    while any(state(pid) in "RS" for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(state(pid) not in "RS" for pid in pids)


FORK_SCRIPT = """
import asyncio, os, pickle, sys
from relay.sign.pool import pool_for, sign_in_pool

profiles = pickle.loads(open(sys.argv[1], "rb").read())

async def sign_once():
    signed = await asyncio.wait_for(
        sign_in_pool(b"From: a@b.test\\r\\n\\r\\nbody\\r\\n", profiles, authenticated=False, now=1),
        20,
    )
    return bool(signed.signatures), pool_for(asyncio.get_running_loop()).pids()

ok, parents = asyncio.run(sign_once())  # the parent's signing processes run
assert ok
child = os.fork()
if child == 0:
    try:
        ok, own = asyncio.run(sign_once())
        os._exit(0 if ok and not set(own) & set(parents) else 1)
    except BaseException as error:
        print("child:", repr(error), file=sys.stderr)
        os._exit(2)
_, status = os.waitpid(child, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_signs_with_processes_of_its_own(key: SigningKey, tmp_path: Path) -> None:
    """The parent's signing processes are the parent's: a forked child starts its own."""
    (tmp_path / "profiles").write_bytes(pickle.dumps(profiles(key)))
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(tmp_path / "profiles")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
