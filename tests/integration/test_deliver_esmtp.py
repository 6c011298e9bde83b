"""relay's SMTP client and the ESMTP extensions of the next hop: SIZE, DSN, SMTPUTF8,
CHUNKING, REQUIRETLS, against a raw sink that offers exactly what each test names."""

from __future__ import annotations

from relay.deliver import DeliverySettings, Destination
from relay.deliver.connection import BDAT_MIN_SIZE, open_connection
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
