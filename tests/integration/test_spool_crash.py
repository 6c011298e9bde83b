"""Crash durability: SIGKILL a process that is storing, reopen, find every acknowledged message."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from relay.spool import Spool

WRITER = Path(__file__).with_name("spool_writer_proc.py")
ROOT = Path(__file__).resolve().parents[2]
KILLS = 6


def _run_and_kill(directory: Path, rng: random.Random) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(directory), str(64 * 1024)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"READY\n"
    time.sleep(rng.uniform(0.05, 0.6))
    proc.send_signal(signal.SIGKILL)
    output = proc.stdout.read()
    proc.wait(timeout=10)
    lines = output.decode().splitlines()
    if lines and not output.endswith(b"\n"):
        lines.pop()  # a line cut by the kill: its operation may or may not have completed
    return lines


async def test_acknowledged_messages_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(1234)
    directory = tmp_path / "spool"
    stored: dict[str, str] = {}
    attempts: dict[str, int] = {}
    removed: set[str] = set()
    total = 0
    for _ in range(KILLS):
        last_of_task: dict[str, tuple[str, str]] = {}
        for line in _run_and_kill(directory, rng):
            kind, task, message_id, *rest = line.split()
            last_of_task[task] = (kind, message_id)
            if kind == "S":
                stored[message_id] = rest[0]
                total += 1
            elif kind == "U":
                attempts[message_id] = int(rest[0])
            elif kind == "R":
                removed.add(message_id)
        # A removal in flight at the kill may have completed without being printed.
        in_flight = {mid for kind, mid in last_of_task.values() if kind == "S"}
        spool = await Spool.open(directory, max_resident_messages=0)
        try:
            assert not list(directory.glob("*.tmp"))
            assert spool.statistics().quarantined == 0
            present = {e.message_id: e for e in spool.scan()}
            for message_id, digest in stored.items():
                if message_id in removed:
                    assert message_id not in present
                    continue
                if message_id in in_flight and message_id not in present:
                    removed.add(message_id)
                    continue
                assert message_id in present, f"acknowledged message {message_id} lost"
                content = await spool.load(message_id)
                assert hashlib.sha256(content).hexdigest() == digest
                if message_id in attempts:
                    assert present[message_id].recipients[0].attempts == attempts[message_id]
        finally:
            await spool.close()
    assert total > 100, f"only {total} messages stored over {KILLS} runs"
