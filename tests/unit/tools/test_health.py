"""relay health: the spool probe, each listener's greeting, and the command's exit codes."""

from __future__ import annotations

import asyncio
import errno
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config import loads
from relay.spool import FileOps, SpoolError, SpoolFullError
from relay.spool.probe import probe_writable
from relay.tools.health import check_listener, connect_address, run_checks
from relay.tools.sink import Recorder, bound_addresses, start_sink
from relay.wiring import compile_settings

HOST = "127.0.0.216"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def test_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    probe_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_probe_of_a_missing_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match=r"spool directory .*/gone does not exist"):
        probe_writable(tmp_path / "gone")


def test_probe_reports_a_full_disk(tmp_path: Path) -> None:
    class Full(FileOps):
        def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SpoolFullError, match="spool disk full"):
        probe_writable(tmp_path, Full())


def test_wildcard_listeners_are_checked_on_loopback() -> None:
    assert connect_address("0.0.0.0") == "127.0.0.1"
    assert connect_address("::") == "::1"
    assert connect_address("127.0.0.9") == "127.0.0.9"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and says nothing."""
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen()
        yield server.getsockname()[1]


def test_listener_checks(tmp_path: Path, silent_server: int) -> None:
    async def with_sink() -> list[tuple[bool, str]]:
        recorder = Recorder(tmp_path)
        servers = await start_sink([f"{HOST}:0"], recorder, quiet=True)
        port = int(bound_addresses(servers)[0].rsplit(":", 1)[1])
        try:
            up = await asyncio.to_thread(check_listener, "a", (HOST, port), 2.0)
        finally:
            for server in servers:
                server.close()
            recorder.close()
        return [(up.ok, up.detail)]

    assert asyncio.run(with_sink()) == [(True, "answers 220")]
    down = check_listener("b", (HOST, free_port()), 2.0)
    assert not down.ok and "cannot connect to 127.0.0.216:" in down.detail
    mute = check_listener("c", (HOST, silent_server), 0.3)
    assert not mute.ok and mute.detail.endswith("within 0.3 s")


def test_run_checks_covers_the_spool_and_every_listener(tmp_path: Path) -> None:
    ports = free_port(), free_port()
    config = loads(
        f'spoolbase = "{tmp_path}"\n'
        "esmtp_listener {\n"
        f'  listen "{HOST}:{ports[0]}" {{ }}\n'
        f'  listen "{HOST}:{ports[1]}" {{ }}\n'
        "}\n"
    )
    results = run_checks(compile_settings(config), timeout=1.0)
    assert [(r.what, r.ok) for r in results] == [
        (f"spool {tmp_path}", True),
        (f"listener {HOST}:{ports[0]}", False),
        (f"listener {HOST}:{ports[1]}", False),
    ]


def health(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", "health", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_command_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text(f'spoolbase = "{tmp_path}"\n')
    done = health("-c", str(good))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ok: spool {tmp_path}: writable\n"

    port = free_port()
    down = tmp_path / "down.conf"
    down.write_text(
        f'spoolbase = "{tmp_path}/missing"\nesmtp_listener {{ listen "{HOST}:{port}" {{ }} }}\n'
    )
    done = health("-c", str(down), "--quiet", "--timeout", "1")
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"unhealthy: spool {tmp_path}/missing: spool directory" in done.stderr
    assert f"unhealthy: listener {HOST}:{port}: cannot connect" in done.stderr

    bad = tmp_path / "bad.conf"
    bad.write_text("spoolbase = \n")
    done = health("-c", str(bad))
    assert done.returncode == 2
    assert "invalid configuration" in done.stderr
