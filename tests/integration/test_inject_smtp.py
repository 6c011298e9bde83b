"""Injection end to end over loopback: a message in, the same message in the real spool."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib

from relay.spool.store import Spool
from tests.integration.inject_helpers import RawClient, make_settings, send_message, serving

MESSAGE = (
    b"From: sender@example.test\r\nTo: rcpt@example.com\r\nSubject: hi\r\n"
    b"X-Binding-Group: marketing\r\n\r\nHello\r\n..leading dot\r\n"
)


async def test_message_reaches_the_real_spool_with_headers_rewritten(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "spool")
    try:
        async with serving(make_settings(), spool) as (_, port):
            client = await RawClient.connect(port)
            await client.greet("client.test")
            code, text = await send_message(client, MESSAGE + b".\r\n")
            assert code == 250 and text.startswith("250 2.0.0 OK queued as "), text
            message_id = text.rsplit(" ", 1)[1]
            assert (await client.command("QUIT"))[0] == 221
            await client.close()
        envelope = spool.get(message_id)
        assert envelope.binding_group == "marketing"
        assert envelope.binding is None
        assert envelope.sender == "sender@example.test"
        assert [r.address for r in envelope.recipients] == ["rcpt@example.com"]
        content = await spool.load(message_id)
    finally:
        await spool.close()
    assert content.startswith(b"Received: from client.test ([127.0.0.1])\r\n\tby relay.test")
    assert b"with ESMTP id " in content
    assert b"\tfor <rcpt@example.com>; " in content
    assert b"X-Binding-Group" not in content
    assert b"\r\nMessage-ID: <" in content
    assert content.endswith(b"\r\n\r\nHello\r\n.leading dot\r\n")


async def test_aiosmtplib_client_sends_and_null_sender_is_kept(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "spool")
    try:
        async with (
            serving(make_settings(), spool) as (_, port),
            aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=2) as smtp,
        ):
            errors, reply = await smtp.sendmail(
                "", ["a@example.com", "b@example.org"], b"Subject: x\r\n\r\nbody\r\n"
            )
            assert errors == {}
            assert reply.startswith("2.0.0 OK queued as ")
        [envelope] = spool.scan()
        assert envelope.sender == ""
        assert envelope.binding_group == "default"
        content = await spool.load(envelope.message_id)
    finally:
        await spool.close()
    assert b"for <" not in content.split(b"\r\n\r\n")[0]  # two recipients: no `for`
