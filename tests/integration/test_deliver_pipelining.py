"""RFC 2920 PIPELINING on the client side: one write for MAIL + RCPTs + DATA, replies read in
order, against aiosmtpd sinks that advertise it (Script.pipelining) or not, and a raw
server for what aiosmtpd will not do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from relay.deliver import DeliverySettings, Destination, Outcome, Phase, open_connection
from relay.deliver.connection import OutboundConnection
from tests.support.fixtures import SinkFactory
from tests.support.messages import make_message
from tests.support.sinks import Script

FAST = {
    "connect_timeout": 2.0,
    "ehlo_timeout": 2.0,
    "mailfrom_timeout": 2.0,
    "rcptto_timeout": 2.0,
    "body_timeout": 2.0,
    "rset_timeout": 2.0,
}


def policy(**fields: Any) -> DeliverySettings:
    values: dict[str, Any] = {"ehlo_hostname": "relay.test", **FAST}
    values.update(fields)
    return DeliverySettings(**values)


async def connect(port: int, host: str = "127.0.0.2", **fields: Any) -> OutboundConnection:
    destination = Destination("mx.example.test", host, port, 10)
    return await open_connection(policy(**fields), "example.test", [destination])


@pytest.mark.parametrize("pipelining", [True, False])
async def test_pipelining_is_used_only_when_advertised(
    smtp_sink: SinkFactory, pipelining: bool
) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(pipelining=pipelining))
    async with await connect(sink.port) as conn:
        assert conn.pipelining is pipelining
        first = await conn.send(make_message("a@example.test", "b@example.test"))
        second = await conn.send(make_message("c@example.test"))
    assert [o.outcome for o in first + second] == [Outcome.DELIVERED] * 3
    assert [m.rcpt_tos for m in sink.messages] == [
        ["a@example.test", "b@example.test"],
        ["c@example.test"],
    ]
    assert sink.commands.count("RSET") == 0


@pytest.mark.parametrize("pipelining", [True, False])
async def test_mixed_rcpt_replies_in_one_block(smtp_sink: SinkFactory, pipelining: bool) -> None:
    script = Script(
        pipelining=pipelining,
        rcpt={
            "bad@example.test": ["550 5.1.1 no such user"],
            "later@example.test": ["451 4.3.0 later"],
        },
    )
    sink = await smtp_sink("127.0.0.2", script=script)
    message = make_message(
        "ok@example.test", "bad@example.test", "later@example.test", "ok2@example.test"
    )
    async with await connect(sink.port) as conn:
        outcomes = await conn.send(message)
        again = await conn.send(make_message("later@example.test"))
        assert conn.usable
    assert [(o.outcome, o.reply.code, o.phase) for o in outcomes] == [
        (Outcome.DELIVERED, 250, Phase.DATA),
        (Outcome.PERMANENT, 550, Phase.RCPT),
        (Outcome.TEMPORARY, 451, Phase.RCPT),
        (Outcome.DELIVERED, 250, Phase.DATA),
    ]
    assert str(outcomes[1].reply.enhanced) == "5.1.1"
    assert again[0].outcome is Outcome.DELIVERED
    assert [m.rcpt_tos for m in sink.messages] == [
        ["ok@example.test", "ok2@example.test"],
        ["later@example.test"],
    ]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_every_rcpt_refused_sends_no_body(smtp_sink: SinkFactory, pipelining: bool) -> None:
    script = Script(pipelining=pipelining, rcpt={"*": ["550 5.1.1 no", "550 5.1.1 no"]})
    sink = await smtp_sink("127.0.0.2", script=script)
    async with await connect(sink.port) as conn:
        refused = await conn.send(make_message("a@example.test", "b@example.test"))
        assert conn.usable
        accepted = await conn.send(make_message("c@example.test"))
    assert [(o.outcome, o.phase) for o in refused] == [(Outcome.PERMANENT, Phase.RCPT)] * 2
    assert accepted[0].outcome is Outcome.DELIVERED
    # Pipelined, DATA went out with the block and aiosmtpd answered it 503 itself (no hook
    # sees it); then RSET, never the body, whose lines would have been taken as commands.
    assert sink.commands[1:] == ["MAIL", "RCPT", "RCPT", "RSET", "MAIL", "RCPT", "DATA"]
    assert len(sink.messages) == 1


@pytest.mark.parametrize("pipelining", [True, False])
async def test_421_in_the_middle_of_the_block(smtp_sink: SinkFactory, pipelining: bool) -> None:
    script = Script(pipelining=pipelining, rcpt={"b@example.test": ["421 4.7.0 closing"]})
    sink = await smtp_sink("127.0.0.2", script=script)
    conn = await connect(sink.port)
    async with conn:
        outcomes = await conn.send(
            make_message("a@example.test", "b@example.test", "c@example.test")
        )
        assert not conn.usable
    assert [(o.outcome, o.reply.code, o.phase) for o in outcomes] == [
        (Outcome.TEMPORARY, 451, Phase.RCPT),
        (Outcome.TEMPORARY, 421, Phase.RCPT),
        (Outcome.TEMPORARY, 451, Phase.RCPT),
    ]
    assert "connection closed by the server" in outcomes[0].reply.text
    assert sink.messages == []


@pytest.mark.parametrize("pipelining", [True, False])
async def test_refused_sender_keeps_the_stream_in_step(
    smtp_sink: SinkFactory, pipelining: bool
) -> None:
    script = Script(pipelining=pipelining, mail=["550 5.7.1 sender blocked"])
    sink = await smtp_sink("127.0.0.2", script=script)
    async with await connect(sink.port) as conn:
        refused = await conn.send(make_message("a@example.test", "b@example.test"))
        accepted = await conn.send(make_message("c@example.test"))
    assert [(o.outcome, o.reply.code, o.phase) for o in refused] == [
        (Outcome.PERMANENT, 550, Phase.MAIL)
    ] * 2
    assert accepted[0].outcome is Outcome.DELIVERED
    assert [m.rcpt_tos for m in sink.messages] == [["c@example.test"]]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_dot_stuffing(smtp_sink: SinkFactory, pipelining: bool) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(pipelining=pipelining))
    content = b".starts with a dot\r\nSubject: x\r\n\r\n.\r\n..two\r\nmiddle . dot\r\n.\r\nend\r\n"
    async with await connect(sink.port) as conn:
        (outcome,) = await conn.send(make_message("a@example.test", content=content))
    assert outcome.outcome is Outcome.DELIVERED
    assert sink.messages[0].content == content


async def test_batches_with_pipelining(smtp_sink: SinkFactory) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(pipelining=True))
    recipients = [f"r{i}@example.test" for i in range(5)]
    async with await connect(sink.port, max_recipients_per_batch=2) as conn:
        outcomes = await conn.send(make_message(*recipients))
    assert [o.outcome for o in outcomes] == [Outcome.DELIVERED] * 5
    assert [len(m.rcpt_tos) for m in sink.messages] == [2, 2, 1]


async def test_stalled_rcpt_reply_times_out_in_rcpt_phase(smtp_sink: SinkFactory) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(pipelining=True, stall="RCPT"))
    conn = await connect(sink.port, rcptto_timeout=0.3)
    async with conn:
        (outcome,) = await conn.send(make_message("a@example.test"))
        assert not conn.usable
    assert (outcome.outcome, outcome.phase) == (Outcome.TEMPORARY, Phase.RCPT)
    assert outcome.reply.local and "timeout after 0.3s waiting for RCPT" in outcome.reply.text


# ---- a raw server: what aiosmtpd will not do -----------------------------------------------

Answer = Callable[[bytes], bytes | None]  # a command line -> its reply (None: no reply)


@asynccontextmanager
async def raw_server(answer: Answer, seen: list[bytes]) -> AsyncIterator[int]:
    """Greets, answers EHLO with PIPELINING, then `answer`s each line; in DATA it collects
    the content until the lone dot. Replies to a block only once the whole block (up to
    DATA, or a lone command) is in, so a client waiting per command would stall."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 raw.test ESMTP\r\n")
        in_data = False
        out: list[bytes] = []
        while line := await reader.readline():
            seen.append(line)
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    out.append(answer(b"END-OF-DATA") or b"250 2.0.0 ok\r\n")
                    writer.write(b"".join(out))
                    out.clear()
                continue
            if line.upper().startswith(b"EHLO"):
                writer.write(b"250-raw.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                continue
            reply = answer(line.rstrip(b"\r\n"))
            if reply is not None:
                out.append(reply)
            if line.upper().startswith(b"DATA") and reply is not None and reply.startswith(b"354"):
                in_data = True
            if line.upper().startswith((b"DATA", b"RSET", b"QUIT")) or not reader._buffer:  # type: ignore[attr-defined]
                writer.write(b"".join(out))
                out.clear()
            if line.upper().startswith(b"QUIT"):
                break
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.7", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize("data_reply", [b"354 go ahead anyway", b"554 5.5.1 no valid recipients"])
async def test_data_after_every_rcpt_refused_gets_no_content(data_reply: bytes) -> None:
    """RFC 2920 3.1: DATA refused -> RSET; DATA accepted anyway -> a lone dot, then RSET."""
    seen: list[bytes] = []
    mails = 0

    def answer(line: bytes) -> bytes | None:
        nonlocal mails
        if line.startswith(b"MAIL"):
            mails += 1
            return b"250 ok\r\n"
        if line.startswith(b"RCPT"):
            return b"550 5.1.1 no\r\n" if mails == 1 else b"250 ok\r\n"
        if line.startswith(b"DATA"):
            return (data_reply if mails == 1 else b"354 go") + b"\r\n"
        if line == b"END-OF-DATA":
            return b"554 5.5.1 no valid recipients\r\n" if mails == 1 else None
        return b"250 ok\r\n" if not line.startswith(b"QUIT") else b"221 bye\r\n"

    async with raw_server(answer, seen) as port, await connect(port, host="127.0.0.7") as conn:
        assert conn.pipelining
        refused = await conn.send(make_message("a@example.test", "b@example.test"))
        accepted = await conn.send(make_message("c@example.test"))
    assert [o.outcome for o in refused] == [Outcome.PERMANENT, Outcome.PERMANENT]
    assert accepted[0].outcome is Outcome.DELIVERED
    commands = [line for line in seen if not line.startswith(b"EHLO")]
    first = commands[: commands.index(b"RSET\r\n")]
    assert first == [
        b"MAIL FROM:<a@sender.test>\r\n",
        b"RCPT TO:<a@example.test>\r\n",
        b"RCPT TO:<b@example.test>\r\n",
        b"DATA\r\n",
        *([b".\r\n"] if data_reply.startswith(b"354") else []),  # no content, only its end
    ]
