"""Starting and stopping listeners: graceful close, uvloop, bind failures, IPv6."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
import uvloop

from relay.inject import ListenError, ListenerSettings, start_listeners
from relay.spool.store import Spool
from tests.integration.inject_helpers import DirSpool, RawClient, make_settings, serving


async def test_close_says_421_to_idle_sessions_and_lets_a_transaction_finish(
    tmp_path: Path,
) -> None:
    spool = DirSpool(tmp_path)
    spool.delay = 0.3  # the handoff is in flight when close() starts
    listeners = await start_listeners(make_settings(), spool)
    port = listeners.bound[0].sockets[0][1]
    idle = await RawClient.connect(port)
    await idle.greet()
    busy = await RawClient.connect(port)
    await busy.greet()
    for command in ("MAIL FROM:<s@example.test>", "RCPT TO:<r@example.com>", "DATA"):
        await busy.command(command)
    await busy.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await listeners.close(grace=2.0)
    assert time.monotonic() - started < 1.5
    code, text = await idle.reply()
    assert text.startswith("421 4.3.2"), text
    code, text = await busy.reply()
    assert code == 250, text  # the message in flight was accepted...
    code, text = await busy.reply()
    assert text.startswith("421 4.3.2"), text  # ...then the session was closed
    assert await busy.closed()
    await busy.close()
    await idle.close()
    assert len(spool.messages) == 1
    with pytest.raises(OSError):
        await RawClient.connect(port)


async def test_close_forces_421_after_the_grace_period(tmp_path: Path) -> None:
    listeners = await start_listeners(make_settings(), DirSpool(tmp_path))
    port = listeners.bound[0].sockets[0][1]
    client = await RawClient.connect(port)
    await client.greet()
    await client.command("MAIL FROM:<s@example.test>")  # a transaction left hanging
    started = time.monotonic()
    await listeners.close(grace=0.3)
    assert 0.25 < time.monotonic() - started < 1.5
    _, text = await client.reply()
    assert text.startswith("421 4.3.2"), text
    await client.close()


def test_runs_on_uvloop_with_the_real_spool(tmp_path: Path) -> None:
    async def main() -> tuple[int, str]:
        spool = await Spool.open(tmp_path / "spool")
        try:
            async with serving(make_settings(), spool) as (_, port):
                client = await RawClient.connect(port)
                await client.greet()
                await client.command("MAIL FROM:<s@example.test>")
                await client.command("RCPT TO:<r@example.com>")
                await client.command("DATA")
                await client.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
                reply = await client.reply()
                await client.close()
            assert len(spool.scan()) == 1
            return reply
        finally:
            await spool.close()

    code, text = uvloop.run(main())
    assert code == 250, text


def test_starttls_works_on_uvloop(tmp_path: Path) -> None:
    from tests.integration.inject_helpers import tls_files

    tls = tls_files(tmp_path)

    async def main() -> int:
        settings = make_settings(tls_certificate=tls.cert, tls_key=tls.key)
        async with serving(settings, DirSpool(tmp_path)) as (_, port):
            client = await RawClient.connect(port)
            await client.greet()
            await client.starttls(tls.client_context)
            code, _ = await client.command("EHLO client.test")
            await client.close()
            return code

    assert uvloop.run(main()) == 250


async def test_address_in_use_is_a_listen_error_naming_the_address(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        settings = make_settings(
            listeners=(ListenerSettings("127.0.0.1:0"), ListenerSettings(f"127.0.0.1:{port}"))
        )
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
            await start_listeners(settings, DirSpool(tmp_path))
    finally:
        taken.close()


async def test_ipv6_listener(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    settings = make_settings(listeners=(ListenerSettings("[::1]:0"),))
    try:
        listeners = await start_listeners(settings, DirSpool(tmp_path))
    except ListenError:
        pytest.skip("::1 not available")
    try:
        port = listeners.bound[0].sockets[0][1]
        reader, writer = await asyncio.wait_for(asyncio.open_connection("::1", port), 2)
        assert (await asyncio.wait_for(reader.readline(), 2)).startswith(b"220 relay.test")
        writer.write(b"EHLO c\r\nMAIL FROM:<s@example.test>\r\nRCPT TO:<r@example.com>\r\n")
        for _ in range(20):
            line = await asyncio.wait_for(reader.readline(), 2)
            if line.startswith(b"550") or line.startswith(b"250 2.1.5"):
                break
        assert line.startswith(b"550 5.7.1")  # ::1 is not in relay_hosts (127.0.0.1/32)
        writer.close()
    finally:
        await listeners.close(grace=0.5)


async def test_a_failed_tls_handshake_closes_and_frees_the_slot(tmp_path: Path) -> None:
    from tests.integration.inject_helpers import tls_files

    tls = tls_files(tmp_path)
    settings = make_settings(tls_certificate=tls.cert, tls_key=tls.key)
    async with serving(settings, DirSpool(tmp_path)) as (listeners, port):
        client = await RawClient.connect(port)
        await client.greet()
        assert (await client.command("STARTTLS"))[0] == 220
        await client.send(b"this is no TLS ClientHello\r\n" * 20)
        assert await client.closed()
        await client.close()
        for _ in range(50):
            if listeners.open_connections == 0:
                break
            await asyncio.sleep(0.02)
        assert listeners.open_connections == 0
        again = await RawClient.connect(port)
        await again.greet()
        await again.close()
