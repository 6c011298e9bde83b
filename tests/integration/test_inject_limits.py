"""Every injection limit over a real socket, with its exact reply code."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from relay.spool.errors import SpoolFullError, SpoolWriteError
from tests.integration.inject_helpers import (
    OUTSIDE,
    DirSpool,
    RawClient,
    make_settings,
    send_message,
    serving,
)


async def test_size_declared_at_mail_over_limit_is_552(tmp_path: Path) -> None:
    async with serving(make_settings(max_message_size=1000), DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        code, text = await client.command("MAIL FROM:<s@example.test> SIZE=1001")
        assert text.startswith("552 5.3.4"), text
        code, text = await client.command("MAIL FROM:<s@example.test> SIZE=1000")
        assert code == 250, text
        await client.close()


async def test_size_exceeded_during_data_is_552(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(max_message_size=1000), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        body = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n"
        code, text = await send_message(client, body * 20 + b".\r\n")
        assert text.startswith("552 5.3.4"), text
        code, text = await send_message(client, body + b".\r\n")  # the session goes on
        assert code == 250, text
        await client.close()
    assert len(spool.messages) == 1


async def test_recipients_past_the_limit_get_452_each(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(max_recipients=3), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        await client.command("MAIL FROM:<s@example.test>")
        codes = []
        for n in range(5):
            _, text = await client.command(f"RCPT TO:<r{n}@example.com>")
            codes.append(text[:9])
        assert codes == ["250 2.1.5"] * 3 + ["452 4.5.3"] * 2
        assert (await client.command("DATA"))[0] == 354
        await client.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert (await client.reply())[0] == 250
        await client.close()
    assert spool.messages[0].recipients == ("r0@example.com", "r1@example.com", "r2@example.com")


async def test_default_recipient_limit_is_100(tmp_path: Path) -> None:
    async with serving(make_settings(max_recipients=100), DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        await client.command("MAIL FROM:<s@example.test>")
        await client.send(b"".join(b"RCPT TO:<r%d@example.com>\r\n" % n for n in range(101)))
        replies = [await client.reply() for _ in range(101)]
        assert [code for code, _ in replies] == [250] * 100 + [452]
        await client.close()


async def test_command_line_over_512_octets_is_500(tmp_path: Path) -> None:
    async with serving(make_settings(), DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        assert (await client.command("NOOP " + "x" * 505))[0] == 250  # 510 + CRLF = 512
        _, text = await client.command("NOOP " + "x" * 506)
        assert text.startswith("500 5.5.2"), text
        _, text = await client.command("NOOP " + "x" * 5000)
        assert text.startswith("500 5.5.2"), text
        assert (await client.command("NOOP"))[0] == 250
        await client.close()


async def test_text_line_over_1000_octets_is_500(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        ok = b"Subject: x\r\n\r\n" + b"y" * 998 + b"\r\n.\r\n"
        assert (await send_message(client, ok))[0] == 250
        for length in (999, 5000, 100_000):
            data = b"Subject: x\r\n\r\n" + b"y" * length + b"\r\n.\r\n"
            _, text = await send_message(client, data)
            assert text.startswith("500 5.5.2"), (length, text)
        await client.close()
    assert len(spool.messages) == 1


async def test_local_part_and_domain_lengths_are_553(tmp_path: Path) -> None:
    async with serving(make_settings(), DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        _, text = await client.command(f"MAIL FROM:<{'a' * 65}@example.test>")
        assert text.startswith("553 5.1.3"), text
        assert (await client.command(f"MAIL FROM:<{'a' * 64}@example.test>"))[0] == 250
        domain = ".".join(["d" * 63] * 4)  # 255 octets
        _, text = await client.command(f"RCPT TO:<a@{domain}x>")
        assert text.startswith("553 5.1.3"), text
        _, text = await client.command(f"RCPT TO:<{'a' * 65}@example.com>")
        assert text.startswith("553 5.1.3"), text
        await client.close()


async def test_idle_client_is_cut_with_421(tmp_path: Path) -> None:
    async with serving(make_settings(idle_timeout=0.3), DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        started = time.monotonic()
        _, text = await client.reply()
        assert text.startswith("421 4.4.2"), text
        assert await client.closed()
        assert time.monotonic() - started < 1.5
        await client.close()


async def test_slow_spool_is_not_the_clients_idle_time_and_the_deadline_returns(
    tmp_path: Path,
) -> None:
    """The idle deadline stops while the spool takes the message (longer than the deadline
    here) and applies again from the 250 on."""
    spool = DirSpool(tmp_path)
    spool.delay = 0.6
    async with serving(make_settings(idle_timeout=0.3), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        code, text = await send_message(client, b"Subject: slow\r\n\r\nbody\r\n.\r\n")
        assert code == 250, text
        started = time.monotonic()
        _, text = await client.reply()
        assert text.startswith("421 4.4.2"), text
        assert 0.2 < time.monotonic() - started < 1.5
        assert await client.closed()
        await client.close()
    assert len(spool.messages) == 1


async def test_client_trickling_a_command_is_cut_with_421(tmp_path: Path) -> None:
    async with serving(make_settings(idle_timeout=0.4), DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        started = time.monotonic()
        for _ in range(30):  # one byte every 50 ms, never a whole line
            try:
                await client.send(b"N")
            except ConnectionError:
                break
            if client.reader.at_eof() or b"421" in client.reader._buffer:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        _, text = await client.reply()
        assert text.startswith("421 4.4.2"), text
        assert time.monotonic() - started < 1.5
        await client.close()


async def test_client_trickling_data_is_cut_at_the_data_deadline(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    settings = make_settings(idle_timeout=2.0, data_timeout=0.5)
    async with serving(settings, spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        await client.command("MAIL FROM:<s@example.test>")
        await client.command("RCPT TO:<r@example.com>")
        assert (await client.command("DATA"))[0] == 354
        started = time.monotonic()
        for _ in range(40):  # a whole line every 50 ms: never idle, never finished
            if client.reader.at_eof() or client.reader._buffer:  # type: ignore[attr-defined]
                break
            try:
                await client.send(b"line\r\n")
            except ConnectionError:
                break
            await asyncio.sleep(0.05)
        _, text = await client.reply()
        assert text.startswith("421 4.4.2"), text
        assert 0.4 < time.monotonic() - started < 1.5
        await client.close()
    assert spool.messages == []


async def test_connections_per_listener_over_limit_get_421(tmp_path: Path) -> None:
    async with serving(make_settings(max_connections_per_listener=2), DirSpool(tmp_path)) as (
        _,
        port,
    ):
        first = await RawClient.connect(port)
        second = await RawClient.connect(port, source=OUTSIDE)
        await first.greet()
        await second.greet()
        third = await RawClient.connect(port, source="127.0.0.10")
        code, text = await third.reply()
        assert text.startswith("421 4.7.0"), text
        assert await third.closed()
        await third.close()
        await first.command("QUIT")
        await first.close()
        for _ in range(50):  # the slot frees once the server sees the close
            fourth = await RawClient.connect(port)
            code, text = await fourth.reply()
            await fourth.close()
            if code == 220:
                break
            await asyncio.sleep(0.02)
        assert code == 220, text
        await second.close()


async def test_connections_per_ip_over_limit_get_421(tmp_path: Path) -> None:
    async with serving(make_settings(max_connections_per_ip=1), DirSpool(tmp_path)) as (_, port):
        first = await RawClient.connect(port)
        await first.greet()
        second = await RawClient.connect(port)
        _, text = await second.reply()
        assert text.startswith("421 4.7.0"), text
        assert await second.closed()
        await second.close()
        other = await RawClient.connect(port, source=OUTSIDE)
        assert (await other.reply())[0] == 220
        await other.close()
        await first.close()


async def test_spool_full_is_452_and_spool_failure_451(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        spool.fail = SpoolFullError("ENOSPC")
        _, text = await send_message(client, b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert text.startswith("452 4.3.1"), text
        spool.fail = SpoolWriteError("EIO")
        _, text = await send_message(client, b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert text.startswith("451 4.3.0"), text
        spool.fail = None
        assert (await send_message(client, b"Subject: x\r\n\r\nx\r\n.\r\n"))[0] == 250
        await client.close()
    assert len(spool.messages) == 1
