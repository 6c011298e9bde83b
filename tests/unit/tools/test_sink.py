"""relay sink: real SMTP sessions on loopback; what it records, and the command's life."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiosmtplib

from relay.tools.sink import Recorder, bound_addresses, message_id, start_sink

HOST = "127.0.0.217"
CLIENT = "127.0.0.218"


def journal(directory: Path) -> list[dict[str, object]]:
    lines = (directory / "messages.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_records_peer_ehlo_envelope_and_content(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    servers = await start_sink([f"{HOST}:0"], recorder, quiet=True)
    port = int(bound_addresses(servers)[0].rsplit(":", 1)[1])
    content = b"Message-ID: <m1@test>\r\nSubject: hi\r\n\r\nline\r\n.starts with a dot\r\n"
    try:
        async with aiosmtplib.SMTP(
            hostname=HOST, port=port, local_hostname="probe.test", source_address=(CLIENT, 0)
        ) as smtp:
            errors, reply = await smtp.sendmail("a@x.test", ["b@y.test", "c@y.test"], content)
            assert errors == {} and reply.startswith("2.0.0 OK recorded as ")
            await smtp.sendmail("", ["d@y.test"], b"Subject: second\r\n\r\nbody\r\n")
    finally:
        for server in servers:
            server.close()
        recorder.close()
    first, second = journal(tmp_path)
    assert first["peer"] == CLIENT
    assert first["listener"] == f"{HOST}:{port}"
    assert first["helo"] == "probe.test" and first["esmtp"] is True
    assert first["sender"] == "a@x.test"
    assert first["recipients"] == ["b@y.test", "c@y.test"]
    assert first["message_id"] == "<m1@test>"
    assert (tmp_path / str(first["file"])).read_bytes() == content  # dot-unstuffed
    assert first["size"] == len(content)
    assert reply.endswith(str(first["id"]))
    assert second["sender"] == "" and second["message_id"] is None
    assert recorder.count == 2


async def test_a_refused_message_is_not_recorded(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    servers = await start_sink([f"{HOST}:0"], recorder, quiet=True)
    port = int(bound_addresses(servers)[0].rsplit(":", 1)[1])
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        assert (await reader.readline()).startswith(b"220 ")
        writer.write(b"HELO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
        for _ in range(4):
            await reader.readline()
        writer.write(b"Subject: x\r\n\r\nbare\nLF\r\n.\r\nQUIT\r\n")
        assert (await reader.readline()).startswith(b"550 5.5.2")
        assert (await reader.readline()).startswith(b"221")
        writer.close()
    finally:
        for server in servers:
            server.close()
        recorder.close()
    assert (tmp_path / "messages.jsonl").read_text() == ""


def test_message_id_is_read_from_the_header_section_only() -> None:
    assert message_id(b"Subject: a\r\nmessage-id:  <x@y> \r\n\r\nMessage-ID: <no>\r\n") == "<x@y>"
    assert message_id(b"Subject: a\r\n\r\nMessage-ID: <in-body>\r\n") is None


def test_command_listens_records_and_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay.cli", "sink", "-l", f"{HOST}:{port}", "-d", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(f"sink: listening on {HOST}:{port}")
        import smtplib

        with smtplib.SMTP(HOST, port, local_hostname="cli.test") as smtp:
            smtp.sendmail("a@x.test", ["b@y.test"], b"Subject: cli\r\n\r\nhi\r\n")
        line = proc.stdout.readline()
        assert "(EHLO cli.test) <a@x.test> -> b@y.test" in line
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped after 1 messages" in out
    assert journal(tmp_path)[0]["helo"] == "cli.test"


def test_command_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "relay.cli", "sink", "-l", "nowhere", "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "error: --listen: listen address 'nowhere': expected host:port" in done.stderr
