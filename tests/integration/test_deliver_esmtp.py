"""relay's SMTP client and the ESMTP extensions of the next hop: SIZE, DSN, SMTPUTF8,
CHUNKING, REQUIRETLS, against a raw sink that offers exactly what each test names."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from relay.deliver import DeliverySettings, Destination
from relay.deliver.connection import BDAT_MIN_SIZE, OutboundConnection, open_connection
from relay.esmtp import Esmtp
from relay.outcome import Outcome, RecipientResult
from tests.support.esmtp_sink import EsmtpSink
from tests.support.messages import DEFAULT_CONTENT, make_message

HOST = "127.0.0.40"


async def _send(
    sink: EsmtpSink, content: bytes, *recipients: str, **kw: object
) -> list[RecipientResult]:
    settings = DeliverySettings(remote_smtp_port=sink.port, ehlo_hostname="relay.test")
    connection = await open_connection(
        settings, "x.test", [Destination("mx.x.test", HOST, sink.port, 10)]
    )
    async with connection:
        return await connection.send(make_message(*recipients, content=content, **kw))  # type: ignore[arg-type]


async def test_bdat_without_pipelining_and_data_for_small_messages() -> None:
    large = DEFAULT_CONTENT + (b"z" * 100 + b"\r\n") * (BDAT_MIN_SIZE // 100)
    async with EsmtpSink(HOST, extensions=["CHUNKING"]) as sink:
        assert [r.outcome for r in await _send(sink, large, "a@x.test")] == [Outcome.DELIVERED]
        assert [r.outcome for r in await _send(sink, DEFAULT_CONTENT, "a@x.test")] == [
            Outcome.DELIVERED
        ]
    assert [m.via for m in sink.messages] == ["BDAT", "DATA"]
    assert sink.messages[0].content == large


async def test_a_message_over_the_servers_size_is_not_sent() -> None:
    async with EsmtpSink(HOST, extensions=["SIZE 20"]) as sink:
        (result,) = await _send(sink, DEFAULT_CONTENT, "a@x.test")
    assert result.outcome is Outcome.PERMANENT and result.reply.code == 552
    assert "SIZE 20" in result.reply.text and not any(
        line.startswith("MAIL") for line in sink.lines
    )


async def test_dsn_parameters_only_to_a_dsn_server() -> None:
    esmtp = Esmtp(ret="FULL", envid="e1", notify=("NEVER", None), orcpt=(None, "rfc822;b+40x.test"))
    for extensions, mail, rcpts in [
        (
            ["DSN"],
            "FROM:<a@sender.test> RET=FULL ENVID=e1",
            ["TO:<a@x.test> NOTIFY=NEVER", "TO:<b@x.test> ORCPT=rfc822;b+40x.test"],
        ),
        ([], "FROM:<a@sender.test>", ["TO:<a@x.test>", "TO:<b@x.test>"]),
    ]:
        async with EsmtpSink(HOST, extensions=extensions) as sink:
            results = await _send(sink, DEFAULT_CONTENT, "a@x.test", "b@x.test", esmtp=esmtp)
        assert [r.dsn_passed for r in results] == [bool(extensions)] * 2
        assert sink.messages[0].mail == mail and sink.messages[0].rcpts == rcpts


async def test_smtputf8_per_recipient_and_requiretls_without_tls() -> None:
    async with EsmtpSink(HOST, extensions=["8BITMIME"]) as sink:
        results = await _send(sink, DEFAULT_CONTENT, "jürgen@x.test", "plain@x.test")
        assert [(r.outcome, r.reply.code) for r in results] == [
            (Outcome.PERMANENT, 553),
            (Outcome.DELIVERED, 250),
        ]
        assert str(results[0].reply.enhanced) == "5.6.7"
        (refused,) = await _send(sink, DEFAULT_CONTENT, "c@x.test", esmtp=Esmtp(requiretls=True))
        assert refused.outcome is Outcome.PERMANENT and str(refused.reply.enhanced) == "5.7.10"
    assert [m.recipients for m in sink.messages] == [["plain@x.test"]]


async def test_with_pipelining_bdat_and_the_content_go_with_mail_and_rcpt() -> None:
    # The sink holds every reply until the content has arrived: a client that waited for
    # the RCPT replies (or a 354) before sending the content would time out.
    async with EsmtpSink(
        HOST, extensions=["PIPELINING", "CHUNKING"], replies_after_content=True
    ) as sink:
        results = await _send(sink, DEFAULT_CONTENT, "a@x.test", "b@x.test")
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 2
        assert [r.outcome for r in await _send(sink, DEFAULT_CONTENT, "c@x.test")] == [
            Outcome.DELIVERED
        ]
    assert [m.via for m in sink.messages] == ["BDAT", "BDAT"]
    assert [m.content for m in sink.messages] == [DEFAULT_CONTENT] * 2
    assert sink.messages[0].rcpts == ["TO:<a@x.test>", "TO:<b@x.test>"]
    assert not [line for line in sink.lines if line.startswith("DATA")]


async def test_a_pipelined_bdat_delivers_to_the_accepted_recipients_only() -> None:
    async with EsmtpSink(
        HOST, extensions=["PIPELINING", "CHUNKING"], refuse=["TO:<gone@x.test>"]
    ) as sink:
        settings = DeliverySettings(remote_smtp_port=sink.port, ehlo_hostname="relay.test")
        connection = await open_connection(
            settings, "x.test", [Destination("mx.x.test", HOST, sink.port, 10)]
        )
        async with connection:  # one connection for the three messages
            assert not connection.sends_ahead  # BDAT: one round trip per message already
            results = await connection.send(make_message("a@x.test", "gone@x.test"))  # type: ignore[arg-type]
            assert [(r.outcome, r.reply.code) for r in results] == [
                (Outcome.DELIVERED, 250),
                (Outcome.PERMANENT, 550),
            ]
            # every recipient refused: the BDAT is refused too, nothing is delivered, and
            # the connection stays in step for the next message
            (alone,) = await connection.send(make_message("gone@x.test"))  # type: ignore[arg-type]
            assert (alone.outcome, alone.reply.code) == (Outcome.PERMANENT, 550)
            (last,) = await connection.send(make_message("b@x.test"))  # type: ignore[arg-type]
            assert (last.outcome, last.reply.code) == (Outcome.DELIVERED, 250)
    assert [m.rcpts for m in sink.messages] == [["TO:<a@x.test>"], ["TO:<b@x.test>"]]
    assert sink.connections == 1


async def test_a_refused_sender_with_a_pipelined_bdat_delivers_nothing() -> None:
    async with EsmtpSink(
        HOST, extensions=["PIPELINING", "CHUNKING"], refuse=["FROM:<a@sender.test>"]
    ) as sink:
        results = await _send(sink, DEFAULT_CONTENT, "a@x.test", "b@x.test")
    assert [(r.outcome, r.reply.code) for r in results] == [(Outcome.PERMANENT, 550)] * 2
    assert sink.messages == []


def _connection_to(sink: EsmtpSink, **settings: object) -> Awaitable[OutboundConnection]:
    delivery = DeliverySettings(remote_smtp_port=sink.port, ehlo_hostname="relay.test", **settings)  # type: ignore[arg-type]
    return open_connection(delivery, "x.test", [Destination("mx.x.test", HOST, sink.port, 10)])


async def test_the_next_message_goes_behind_the_content_and_its_replies_wait_for_it() -> None:
    # Each transaction's last reply comes 0.3 s late: a MAIL that arrives meanwhile was
    # sent behind the content (RFC 2920 3.1), not after the 250.
    m1, m2, m3 = (make_message(f"{n}@x.test", message_id=n) for n in ("m1", "m2", "m3"))
    async with EsmtpSink(HOST, extensions=["PIPELINING"], final_delay=0.3) as sink:
        connection = await _connection_to(sink)
        async with connection:
            assert connection.sends_ahead
            for message, then in ((m1, m2), (m2, m3), (m3, None)):
                (result,) = await connection.send(message, then)  # type: ignore[arg-type]
                assert result.outcome is Outcome.DELIVERED
    assert sink.ahead == 2 and sink.connections == 1
    assert [m.recipients for m in sink.messages] == [["m1@x.test"], ["m2@x.test"], ["m3@x.test"]]
    assert [m.content for m in sink.messages] == [DEFAULT_CONTENT] * 3
    assert not [line for line in sink.lines if line == "RSET"]


async def test_a_message_sent_ahead_and_not_used_is_never_delivered() -> None:
    m1, m2 = make_message("a@x.test", message_id="m1"), make_message("b@x.test", message_id="m2")
    async with EsmtpSink(HOST, extensions=["PIPELINING"], final_delay=0.2) as sink:
        connection = await _connection_to(sink)
        async with connection:
            (result,) = await connection.send(m1, m2)  # type: ignore[arg-type]
            assert result.outcome is Outcome.DELIVERED
        # closed with m2's DATA accepted: no QUIT (it would be read as m2's content)
        await asyncio.sleep(0.3)
    assert sink.ahead == 1 and [m.recipients for m in sink.messages] == [["a@x.test"]]
    assert "QUIT" not in sink.lines


async def test_a_connection_closed_after_the_250_leaves_the_message_sent_ahead_unattempted() -> (
    None
):
    m1, m2 = make_message("a@x.test", message_id="m1"), make_message("b@x.test", message_id="m2")
    async with EsmtpSink(HOST, extensions=["PIPELINING"], final_delay=0.1, close_after=1) as sink:
        connection = await _connection_to(sink)
        async with connection:
            (first,) = await connection.send(m1, m2)  # type: ignore[arg-type]
            (second,) = await connection.send(m2)  # type: ignore[arg-type]
            assert not connection.usable
    assert first.outcome is Outcome.DELIVERED and sink.ahead == 1
    # unanswered, so not attempted: sent again at once on another connection, no retry
    assert second.outcome is Outcome.NOT_ATTEMPTED
    assert [m.recipients for m in sink.messages] == [["a@x.test"]]


async def test_what_the_connection_cannot_take_is_not_sent_ahead() -> None:
    big = make_message("b@x.test", message_id="big", content=DEFAULT_CONTENT * 10_000)
    cases = [  # (settings, the message to follow)
        ({"max_deliveries_per_connection": 1}, make_message("b@x.test", message_id="m2")),
        ({"max_recipients_per_batch": 1}, make_message("b@x.test", "c@x.test", message_id="m2")),
        ({}, make_message("jürgen@x.test", message_id="m2")),  # no SMTPUTF8 offered
        ({}, make_message("b\r\n@x.test", message_id="m2")),  # unsendable
    ]
    async with EsmtpSink(HOST, extensions=["PIPELINING", "SIZE 100000"], final_delay=0.05) as sink:
        for settings, then in [*cases, ({}, big)]:  # big: over the server's SIZE
            connection = await _connection_to(sink, **settings)
            async with connection:
                (result,) = await connection.send(make_message("a@x.test"), then)  # type: ignore[arg-type]
                assert result.outcome is Outcome.DELIVERED
    assert sink.ahead == 0 and len(sink.messages) == len(cases) + 1


async def test_a_server_refusing_a_mail_sent_ahead_gets_each_message_after_its_reply() -> None:
    m1, m2, m3 = (make_message(f"{n}@x.test", message_id=n) for n in ("m1", "m2", "m3"))
    async with EsmtpSink(
        HOST, extensions=["PIPELINING"], final_delay=0.1, refuse_ahead=True
    ) as sink:
        connection = await _connection_to(sink)
        async with connection:
            (first,) = await connection.send(m1, m2)  # type: ignore[arg-type]
            (second,) = await connection.send(m2, m3)  # type: ignore[arg-type]
            assert not connection.sends_ahead
            (third,) = await connection.send(m3)  # type: ignore[arg-type]
    assert first.outcome is Outcome.DELIVERED and third.outcome is Outcome.DELIVERED
    # not the mail's fault: a temporary failure, retried
    assert second.outcome is Outcome.TEMPORARY and str(second.reply.enhanced) == "4.5.0"
    assert "503" in second.reply.text
    assert sink.ahead == 1 and [m.recipients for m in sink.messages] == [
        ["m1@x.test"],
        ["m3@x.test"],
    ]
