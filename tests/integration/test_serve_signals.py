"""`relay serve` as a real process: SIGUSR1 rotates the event log; a bad admin token file
stops the start with the operator's message (file, line, option) and exit code 2."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiosmtplib

from tests.integration.relay_harness import free_port


def write_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    nowhere = tmp_path / "resolv.conf"
    nowhere.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    path = tmp_path / "relay.conf"
    path.write_text(
        f'hostname = "relay.test"\nspoolbase = "{tmp_path / "spool"}"\n'
        f'event_log = "{tmp_path / "events.jsonl"}"\nforce_fsync = false\n'
        f'shutdown_timeout = 1\nresolv_conf = "{nowhere}"\ndns_port = 9\n'
        "suspend_delivery = true\n"
        f"{extra}"
        f'esmtp_listener {{\n  relay_hosts = ( "127.0.0.0/8" )\n'
        f'  listen "127.0.0.1:{port}" {{ }}\n}}\n'
    )
    return path


async def serve(path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.cli",
        "serve",
        "-c",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_sigusr1_rotates_the_event_log(tmp_path: Path) -> None:
    port = free_port()
    proc = await serve(write_config(tmp_path, port))
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"listening on" in line
        await aiosmtplib.send(
            b"Subject: x\r\n\r\nhi\r\n",
            sender="s@x.test",
            recipients=["r@y.test"],
            hostname="127.0.0.1",
            port=port,
            timeout=10,
        )
        proc.send_signal(signal.SIGUSR1)
        rotated = tmp_path / "events.jsonl.1"
        for _ in range(200):  # bounded: 10 s
            if rotated.exists():
                break
            await asyncio.sleep(0.05)
        events = [json.loads(x)["event"] for x in rotated.read_text().splitlines()]
        assert events == ["reception"]
        assert (tmp_path / "events.jsonl").read_text() == ""
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_a_bad_token_file_stops_the_start(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ops:admin:0123456789abcdef\nops:superuser:0123456789abcdef\n")
    extra = f'admin_listen = "127.0.0.1:{free_port()}"\nadmin_token_file = "{tokens}"\n'
    proc = await serve(write_config(tmp_path, free_port(), extra))
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert (
        f"error: {tokens}:2:0: admin_token_file: scope 'superuser' is not one of read, "
        "inject, admin\n" in err.decode()
    )
