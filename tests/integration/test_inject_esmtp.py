"""ESMTP extensions on the wire against relay's listener: EHLO keywords, DSN / SMTPUTF8 /
REQUIRETLS parameters (good, bad, xtext edge cases), BDAT cut at awkward byte boundaries and
held to DATA's rules; what reaches the spool."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.deliver import DeliverySettings, Destination
from relay.deliver.connection import open_connection
from relay.esmtp import Esmtp
from relay.inject import replies
from relay.outcome import Outcome
from tests.integration.inject_helpers import (
    DirSpool,
    RawClient,
    make_settings,
    serving,
    tls_files,
)
from tests.support.messages import DEFAULT_CONTENT, make_message


async def _client(port: int) -> RawClient:
    client = await RawClient.connect(port)
    await client.greet()
    return client


async def test_ehlo_offers_the_extensions(tmp_path: Path) -> None:
    tls = tls_files(tmp_path)
    settings = make_settings(tls_certificate=tls.cert, tls_key=tls.key, max_message_size=5000)
    async with serving(settings, DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port)
        await client.reply()
        _, text = await client.command("EHLO c")
        assert text.splitlines()[1:] == [
            "250-SIZE 5000",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-DSN",
            "250-CHUNKING",
            "250-STARTTLS",
            "250-SMTPUTF8",
            "250 HELP",
        ]
        assert await client.command("MAIL FROM:<a@example.test> REQUIRETLS") == (
            530,
            replies.REQUIRETLS_NEEDS_TLS,
        )
        await client.starttls(tls.client_context)
        _, text = await client.command("EHLO c")
        assert "250-REQUIRETLS" in text.splitlines()
        assert (await client.command("MAIL FROM:<a@example.test> REQUIRETLS"))[0] == 250
        await client.close()


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("MAIL FROM:<a@example.test> RET=FULL ENVID=x+2By", replies.SENDER_OK),
        ("MAIL FROM:<a@example.test> RET=BOTH", replies.RET_INVALID),
        ("MAIL FROM:<a@example.test> ENVID=a+2b", replies.ENVID_INVALID),
        ("MAIL FROM:<a@example.test> ENVID=+", replies.ENVID_INVALID),
        ("MAIL FROM:<a@example.test> ENVID=" + "e" * 101, replies.ENVID_INVALID),
        ("MAIL FROM:<a@example.test> RET=HDRS RET=HDRS", replies.parameter_twice("RET")),
        ("MAIL FROM:<a@example.test> SIZE=999999", replies.MESSAGE_TOO_BIG),
        ("MAIL FROM:<a@example.test> SMTPUTF8=yes", replies.SMTPUTF8_ARGUMENT),
    ],
)
async def test_mail_parameters_on_the_wire(tmp_path: Path, line: str, reply: str) -> None:
    async with serving(make_settings(max_message_size=5000), DirSpool(tmp_path)) as (_, port):
        client = await _client(port)
        code, text = await client.command(line)
        assert text == reply and code == int(reply[:3])
        await client.close()


@pytest.mark.parametrize(
    ("params", "reply"),
    [
        ("NOTIFY=SUCCESS,FAILURE,DELAY", replies.RECIPIENT_OK),
        ("NOTIFY=never", replies.RECIPIENT_OK),
        ("NOTIFY=NEVER,DELAY", replies.NOTIFY_INVALID),
        ("NOTIFY=FAILURE,", replies.NOTIFY_INVALID),
        ("ORCPT=rfc822;user+2Btag+40example.com", replies.RECIPIENT_OK),
        ("ORCPT=rfc822;user+2btag", replies.ORCPT_INVALID),  # lower-case hex
        ("ORCPT=rfc822;+4", replies.ORCPT_INVALID),  # cut hexchar
        ("ORCPT=rfc822;a+", replies.ORCPT_INVALID),
        ("ORCPT=rfc822", replies.ORCPT_INVALID),
        ("ORCPT=rfc822;" + "x" * 494, replies.ORCPT_INVALID),
        ("NOTIFY=NEVER ORCPT=rfc822;" + "x" * 493, replies.RECIPIENT_OK),  # a 1000-octet line
        ("RET=FULL", replies.unknown_parameters("RCPT")),
    ],
)
async def test_rcpt_parameters_on_the_wire(tmp_path: Path, params: str, reply: str) -> None:
    async with serving(make_settings(), DirSpool(tmp_path)) as (_, port):
        client = await _client(port)
        assert (await client.command("MAIL FROM:<a@example.test>"))[0] == 250
        code, text = await client.command(f"RCPT TO:<b@example.com> {params}")
        assert text == reply and code == int(reply[:3])
        await client.close()


async def test_dsn_and_utf8_parameters_reach_the_spool(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await _client(port)
        await client.send(
            "MAIL FROM:<dörte@bücher.example> SMTPUTF8 RET=HDRS ENVID=Q+2B1\r\n"
            "RCPT TO:<one@example.com> NOTIFY=SUCCESS ORCPT=rfc822;one+40example.com\r\n"
            "RCPT TO:<zwei@bücher.example>\r\n"
            "DATA\r\n".encode()
        )
        for expected in (250, 250, 250, 354):
            assert (await client.reply())[0] == expected
        await client.send("Subject: Grüße\r\n\r\nhi\r\n.\r\n".encode())
        assert (await client.reply())[0] == 250
        await client.close()
    (message,) = spool.messages
    assert message.sender == "dörte@xn--bcher-kva.example"
    assert message.recipients == ("one@example.com", "zwei@xn--bcher-kva.example")
    assert message.esmtp == Esmtp(
        ret="HDRS",
        envid="Q+2B1",
        smtputf8=True,
        notify=("SUCCESS", None),
        orcpt=("rfc822;one+40example.com", None),
    )


async def test_utf8_address_without_smtputf8_is_refused(tmp_path: Path) -> None:
    async with serving(make_settings(), DirSpool(tmp_path)) as (_, port):
        client = await _client(port)
        await client.send("MAIL FROM:<dörte@bücher.example>\r\n".encode())
        assert await client.reply() == (553, replies.UTF8_NEEDS_SMTPUTF8)
        await client.close()


BODY = b"Subject: chunks\r\n\r\n.leading dot\r\nmiddle\r\n.\r\nafter a dot line\r\n"


@pytest.mark.parametrize("cut", [1, 2, 17, 18, 19, 20, 21, 33, 34, 40, 41, len(BODY) - 1])
async def test_bdat_split_at_awkward_boundaries(tmp_path: Path, cut: int) -> None:
    """Chunks ending inside CRLF, before a dot, inside CRLF.CRLF; the bytes also written
    one at a time: the spooled content is the content sent."""
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await _client(port)
        script = (
            b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.com>\r\n"
            + b"BDAT %d\r\n" % cut
            + BODY[:cut]
            + b"BDAT %d LAST\r\n" % (len(BODY) - cut)
            + BODY[cut:]
        )
        for n in range(len(script)):
            client.writer.write(script[n : n + 1])
            if n % 7 == 0:
                await client.writer.drain()
                await asyncio.sleep(0)
        await client.writer.drain()
        codes = [(await client.reply())[0] for _ in range(4)]
        assert codes == [250, 250, 250, 250]
        await client.close()
    (message,) = spool.messages
    head, body = message.content.split(b"\r\n\r\n", 1)
    assert b"\r\nSubject: chunks\r\n" in head and body == BODY.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    ("content", "reply"),
    [
        (b"Subject: x\r\n\r\nbare\nlf\r\n", replies.BARE_LINE_ENDING),
        (b"Subject: x\r\n\r\nbare\rcr\r\n", replies.BARE_LINE_ENDING),
        (b"Subject: x\r\n\r\nnul\x00\r\n", replies.NUL_IN_DATA),
        (b"Subject: x\r\n\r\n" + b"y" * 1000 + b"\r\n", replies.LINE_TOO_LONG),
    ],
)
async def test_bdat_is_refused_like_data(tmp_path: Path, content: bytes, reply: str) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await _client(port)
        for command in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.com>"):
            assert (await client.command(command))[0] == 250
        # a smuggled transaction inside the chunk stays content
        smuggled = content + b"\r\n.\r\nMAIL FROM:<evil@x.test>\r\n"
        await client.send(b"BDAT %d LAST\r\n" % len(smuggled) + smuggled)
        assert (await client.reply())[1] == reply
        assert (await client.command("NOOP"))[0] == 250
        await client.close()
    assert spool.messages == []


async def test_bdat_over_the_size_limit_and_bdat_out_of_order(tmp_path: Path) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(max_message_size=100), spool) as (_, port):
        client = await _client(port)
        # BDAT before MAIL: refused, and its octets are read, not taken for commands
        await client.send(b"BDAT 6\r\nQUIT\r\n")
        assert (await client.reply())[1] == replies.NEED_MAIL
        for command in ("MAIL FROM:<a@example.test>", "RCPT TO:<b@example.com>"):
            assert (await client.command(command))[0] == 250
        await client.send(b"BDAT 60\r\n" + b"x" * 58 + b"\r\n")
        assert (await client.reply())[1] == "250 2.0.0 60 octets received"
        assert (await client.command("DATA"))[1] == replies.IN_BDAT
        await client.send(b"BDAT 60 LAST\r\n" + b"x" * 58 + b"\r\n")
        assert (await client.reply())[1] == replies.MESSAGE_TOO_BIG
        assert (await client.command("NOOP"))[0] == 250
        await client.close()
    assert spool.messages == []


async def test_relays_own_client_pipelines_bdat_into_its_listener(tmp_path: Path) -> None:
    """relay to relay: MAIL, RCPT, BDAT LAST and the content in one write; a refused RCPT
    (over max_recipients) leaves the rest delivered and the connection in step."""
    spool = DirSpool(tmp_path)
    async with serving(make_settings(max_recipients=1), spool) as (_, port):
        settings = DeliverySettings(remote_smtp_port=port, ehlo_hostname="relay.test")
        connection = await open_connection(
            settings, "example.com", [Destination("mx.example.com", "127.0.0.1", port, 10)]
        )
        async with connection:
            assert connection.extensions.keys() >= {"pipelining", "chunking"}
            first = await connection.send(make_message("a@example.com", "b@example.com"))  # type: ignore[arg-type]
            assert [(r.outcome, r.reply.code) for r in first] == [
                (Outcome.DELIVERED, 250),
                (Outcome.TEMPORARY, 452),
            ]
            second = await connection.send(make_message("c@example.com", message_id="m2"))  # type: ignore[arg-type]
            assert [(r.outcome, r.reply.code) for r in second] == [(Outcome.DELIVERED, 250)]
    assert [m.recipients for m in spool.messages] == [("a@example.com",), ("c@example.com",)]
    for m in spool.messages:  # relay's Received and Message-ID added, the rest as sent
        assert b"\r\nFrom: a@sender.test\r\nSubject: test\r\n" in m.content
        assert m.content.endswith(DEFAULT_CONTENT.split(b"\r\n\r\n", 1)[1])
