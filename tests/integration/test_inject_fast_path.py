"""Every command goes through the one state machine as the bytes arrive (there is no
second, slower path any more): the replies are the same however the client's bytes are cut
up or pipelined, and plain commands mix with the rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.inject.protocol import Event, Session
from tests.integration.inject_helpers import DirSpool, RawClient, make_settings, serving

TRANSACTION = (
    b"MAIL FROM:<sender@example.test>\r\n"
    b"RCPT TO:<one@example.com>\r\n"
    b"RCPT TO:<two@example.com>\r\n"
    b"DATA\r\n"
    b"Subject: fast\r\n\r\nbody line\r\n.\r\n"
)
REPLIES = [250, 250, 250, 354, 250]


async def _replies(client: RawClient, count: int) -> list[int]:
    return [(await client.reply())[0] for _ in range(count)]


def _count_command_lines(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """A spy on the machine's command reader (the real method still runs): the lines it
    took, verb only."""
    taken: list[bytes] = []
    real = Session._command

    def spy(self: Session, line: bytes) -> Event | None:
        taken.append(line.split(b" ", 1)[0].rstrip(b"\r"))
        return real(self, line)

    monkeypatch.setattr(Session, "_command", spy)
    return taken


async def test_pipelined_transactions_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = _count_command_lines(monkeypatch)
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        await client.send(TRANSACTION * 3 + b"QUIT\r\n")
        assert await _replies(client, 16) == REPLIES * 3 + [221]
        assert await client.closed()
    assert len(spool.messages) == 3
    # EHLO, then MAIL, 2 x RCPT, DATA per transaction and QUIT: each read by the machine
    assert taken == [b"EHLO", *[b"MAIL", b"RCPT", b"RCPT", b"DATA"] * 3, b"QUIT"]
    for message in spool.messages:
        assert message.recipients == ("one@example.com", "two@example.com")
        assert b"\r\nSubject: fast\r\n" in message.content
        assert message.content.endswith(b"\r\n\r\nbody line\r\n")


async def test_one_byte_at_a_time(tmp_path: Path) -> None:
    """Partial lines are kept until their end comes; then read as if sent at once."""
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        for octet in TRANSACTION * 2:
            await client.send(bytes([octet]))
            await asyncio.sleep(0)
        assert await _replies(client, 10) == REPLIES * 2
        code, _ = await client.command("NOOP")
        assert code == 250
    assert len(spool.messages) == 2


async def test_slow_commands_between_fast_ones(tmp_path: Path) -> None:
    """RSET, NOOP, parameters, errors and a nested MAIL between plain commands: the
    replies and the state they leave are right whatever came before."""
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        script = [
            (b"MAIL FROM:<a@example.test>", 250),
            (b"MAIL FROM:<b@example.test>", 503),  # nested
            (b"RSET", 250),
            (b"DATA", 503),  # no recipients
            (b"MAIL FROM:<a@example.test> SIZE=100", 250),  # parameters
            (b"RCPT TO:<bad address>", 553),
            (b"RCPT TO:<ok@example.com>", 250),
            (b"NOOP", 250),
            (b"DATA", 354),
        ]
        for line, expected in script:
            code, text = await client.command(line.decode())
            assert code == expected, (line, text)
        code, _ = await client.command("Subject: x\r\n\r\nhello\r\n.")
        assert code == 250
    assert [m.sender for m in spool.messages] == ["a@example.test"]
    assert spool.messages[0].recipients == ("ok@example.com",)


async def test_commands_before_ehlo_are_refused(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.reply()  # the greeting only
        code, _ = await client.command("MAIL FROM:<a@example.test>")
        assert code == 503
    assert spool.messages == []


async def test_input_pipelined_behind_a_message_waits_for_its_250(tmp_path: Path) -> None:
    """The next transaction, sent while the first is being spooled, is answered after the
    first message's 250 and in order."""
    spool = DirSpool(tmp_path)
    spool.delay = 0.2
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        await client.send(TRANSACTION + TRANSACTION)
        codes = await _replies(client, 10)
        assert codes == REPLIES * 2
    assert len(spool.messages) == 2


@pytest.mark.parametrize("refused", [1, 400])
async def test_refused_messages_and_the_session_goes_on(tmp_path: Path, refused: int) -> None:
    """Each refusal is answered from the loop, not from inside the previous one's handling
    (a deep pipeline of refused messages must not recurse)."""
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        bad = TRANSACTION.replace(b"body line\r\n", b"bare\nline\r\n")
        await client.send(bad * refused + TRANSACTION)
        replies = await _replies(client, 5 * (refused + 1))
        assert replies == [250, 250, 250, 354, 550] * refused + REPLIES
    assert len(spool.messages) == 1


async def test_client_leaving_mid_content_spools_nothing(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (listeners, port):
        client = await RawClient.connect(port)
        await client.greet()
        await client.send(TRANSACTION[: TRANSACTION.index(b"body")])
        assert await _replies(client, 4) == [250, 250, 250, 354]
        await client.close()
        await asyncio.sleep(0.1)
        assert listeners is not None
    assert spool.messages == []


async def test_input_behind_a_message_is_held_within_a_bound(tmp_path: Path) -> None:
    """While a message is spooled, what the client pipelines is kept, reading pauses past
    HELD_LIMIT, and every command is still answered in order once the 250 is out."""
    from relay.inject.connection import HELD_LIMIT

    spool = DirSpool(tmp_path)
    spool.delay = 0.3
    async with serving(make_settings(), spool) as (listeners, port):
        client = await RawClient.connect(port)
        await client.greet()
        client.writer.write(TRANSACTION + b"NOOP\r\n" * 100_000)  # 600 kB, not drained here
        await asyncio.sleep(0.2)
        [ctx] = [ctx for ctx, _ in listeners._servers]
        [connection] = ctx.sessions
        machine = connection._machine
        assert machine is not None and machine.in_transaction
        assert 0 < machine.buffered < HELD_LIMIT + 256 * 1024
        assert connection._reading_paused
        assert await _replies(client, 5) == REPLIES
        for _ in range(100_000):
            assert (await client.reply())[0] == 250
        await client.close()
    assert len(spool.messages) == 1
