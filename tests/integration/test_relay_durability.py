"""A message answered 250 is on disk first: kill -9 the daemon mid-stream, many times.

The relay runs as a real subprocess (`relay serve`) with fsync on and delivery suspended,
20 sessions inject in parallel, and the process is SIGKILLed at random moments. Every
message that got its 250 must be in the spool afterwards with the bytes that were sent,
and nothing partial may remain.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiosmtplib
import pytest

from relay.spool.store import Spool
from tests.integration.relay_harness import free_port

REPO = Path(__file__).parents[2]


def config(directory: Path, port: int, spoolbase: Path | None = None) -> Path:
    path = directory / "relay.conf"
    (directory / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    path.write_text(
        f"""
hostname = "relay.test"
spoolbase = "{spoolbase or directory / "spool"}"
event_log = "{directory / "events.jsonl"}"
suspend_delivery = true   # keep everything in the spool
resolv_conf = "{directory / "resolv.conf"}"   # never the host's resolvers
dns_port = 9
esmtp_listener {{
  relay_hosts = ( "127.0.0.0/8" )
  listen "127.0.0.1:{port}" {{ }}
}}
"""
    )
    return path


def start(conf: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay.cli", "serve", "-c", str(conf)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if b"listening on" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("relay did not start")


def message(token: str) -> bytes:
    body = "".join(
        f"line {i} of {token} ........................................\r\n" for i in range(30)
    )
    return (
        f"From: s@sender.test\r\nTo: r@one.test\r\nSubject: {token}\r\n"
        f"Message-ID: <{token}@sender.test>\r\n\r\n{body}"
    ).encode()


async def inject(port: int, accepted: dict[str, bytes], stop_at: float, worker: int) -> None:
    n = 0
    while time.monotonic() < stop_at:
        try:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5)
            await client.connect()
            while time.monotonic() < stop_at:
                token = f"w{worker}n{n}r{random.random():.12f}"
                n += 1
                data = message(token)
                await client.sendmail("s@sender.test", ["r@one.test"], data)
                accepted[token] = data  # only after the 250
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            await asyncio.sleep(0.05)


async def spooled(directory: Path) -> dict[str, bytes]:
    spool = await Spool.open(directory, fsync=False)
    try:
        assert spool.recovery_report.quarantined == []
        found: dict[str, bytes] = {}
        for envelope in spool.scan():
            content = await spool.load(envelope.message_id)
            subject = content.split(b"\r\nSubject: ", 1)[1].split(b"\r\n", 1)[0].decode()
            found[subject] = content
        return found
    finally:
        await spool.close()


async def test_sigkill_never_loses_an_accepted_message(tmp_path: Path) -> None:
    port = free_port()
    conf = config(tmp_path, port)
    accepted: dict[str, bytes] = {}
    rng = random.Random()
    for _ in range(4):
        proc = start(conf)
        kill_at = time.monotonic() + rng.uniform(0.3, 1.2)
        clients = [asyncio.create_task(inject(port, accepted, kill_at + 0.5, w)) for w in range(20)]
        await asyncio.sleep(max(0.0, kill_at - time.monotonic()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        await asyncio.gather(*clients)
    assert len(accepted) > 50, "the test injected too little to mean anything"
    found = await spooled(tmp_path / "spool")
    missing = set(accepted) - set(found)
    assert not missing, f"{len(missing)} accepted messages lost"
    for token, sent in accepted.items():
        stored = found[token]
        assert stored.endswith(sent), token  # relay only prepends its Received header
        assert stored[: len(stored) - len(sent)].startswith(b"Received: from ")
    leftovers = [p for p in (tmp_path / "spool").rglob("*") if p.suffix == ".tmp"]
    assert leftovers == []


def can_mount_tmpfs(target: Path) -> bool:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


async def test_full_disk_answers_452_never_250(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if not can_mount_tmpfs(small):
        pytest.skip("cannot mount a tmpfs here (the spool tests cover a fault-injecting layer)")
    try:
        port = free_port()
        conf = config(tmp_path, port, spoolbase=small / "spool")
        proc = start(conf)
        try:
            accepted: list[str] = []
            refused: list[str] = []
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10)
            await client.connect()
            for n in range(200):
                token = f"full{n}"
                try:
                    await client.sendmail("s@sender.test", ["r@one.test"], message(token) * 4)
                    accepted.append(token)
                except aiosmtplib.SMTPDataError as err:
                    assert err.code == 452, err
                    assert "4.3.1" in err.message
                    refused.append(token)
                    if len(refused) >= 3:
                        break
            await client.quit()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        assert accepted and refused
        found = await spooled(small / "spool")
        assert set(accepted) <= set(found)
        assert not set(refused) & set(found)
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(small)], check=False)
