"""SMTP smuggling: no end-of-data but <CRLF>.<CRLF>; one message in, at most one spooled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.inject_helpers import DirSpool, RawClient, make_settings, serving

VECTORS = [
    b"\n.\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n\x00.\r\n",
]
SMUGGLED = (
    b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
    b"From: ceo@example.com\r\n\r\nsmuggled\r\n"
)


def _attack(vector: bytes) -> bytes:
    return b"Subject: hi\r\n\r\nfirst" + vector + SMUGGLED + b".\r\n"


async def _inject(tmp_path: Path, vector: bytes, *, normalize: bool) -> tuple[DirSpool, int]:
    spool = DirSpool(tmp_path)
    settings = make_settings(normalize_bare_line_endings=normalize)
    async with serving(settings, spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        for command in ("MAIL FROM:<sender@example.test>", "RCPT TO:<rcpt@example.com>", "DATA"):
            code, text = await client.command(command)
            assert code in (250, 354), text
        await client.send(_attack(vector))
        code, _ = await client.reply()
        # Whatever followed must not be taken for commands: the session is idle and sane.
        after = await client.command("NOOP")
        assert after[0] == 250, after
        await client.command("QUIT")
        await client.close()
    return spool, code


@pytest.mark.parametrize("vector", VECTORS, ids=[repr(v) for v in VECTORS])
async def test_vector_is_refused_by_default(tmp_path: Path, vector: bytes) -> None:
    spool, code = await _inject(tmp_path, vector, normalize=False)
    assert code == 550
    assert spool.messages == []
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240


@pytest.mark.parametrize("vector", VECTORS, ids=[repr(v) for v in VECTORS])
async def test_vector_is_kept_as_content_when_normalizing(tmp_path: Path, vector: bytes) -> None:
    spool, code = await _inject(tmp_path, vector, normalize=True)
    if b"\x00" in vector:
        assert code == 550  # NUL is refused in both modes
        assert spool.messages == []
        return
    assert code == 250
    [message] = spool.messages  # one message in, one spooled: never a second from evil@
    assert message.sender == "sender@example.test"
    assert b"MAIL FROM:<evil@attacker.test>" in message.content
    assert b"\r" not in message.content.replace(b"\r\n", b"")
    assert b"\n" not in message.content.replace(b"\r\n", b"")


async def test_reply_codes_for_bare_lf_and_nul(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        for data, expected in (
            (b"a\nb\r\n.\r\n", "550 5.5.2"),
            (b"a\rb\r\n.\r\n", "550 5.5.2"),
            (b"a\x00b\r\n.\r\n", "550 5.5.2"),
            (b"fine\r\n.\r\n", "250 2.0.0"),
        ):
            for command in ("MAIL FROM:<s@example.test>", "RCPT TO:<r@example.com>", "DATA"):
                await client.command(command)
            await client.send(data)
            _, text = await client.reply()
            assert text.startswith(expected), (data, text)
        await client.close()
    assert len(spool.messages) == 1


async def test_commands_pipelined_after_starttls_are_discarded(tmp_path: Path) -> None:
    from tests.integration.inject_helpers import tls_files

    tls = tls_files(tmp_path)
    spool = DirSpool(tmp_path)
    settings = make_settings(tls_certificate=tls.cert, tls_key=tls.key)
    async with serving(settings, spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        # The plaintext MAIL and RCPT ride in the same segment as STARTTLS.
        await client.send(
            b"STARTTLS\r\nMAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.com>\r\n"
        )
        code, text = await client.reply()
        assert code == 220, text
        await client.writer.start_tls(tls.client_context, server_hostname="relay.test")
        # The session was reset: HELO is needed again, and no MAIL survived.
        assert (await client.command("RCPT TO:<victim@example.com>"))[0] == 503
        assert (await client.command("EHLO client.test"))[0] == 250
        code, text = await client.command("RCPT TO:<victim@example.com>")
        assert code == 503 and "need MAIL" in text, text
        await client.close()
    assert spool.messages == []
