"""The delivery methods against real servers on loopback: plain SMTP (HELO only) and XCLIENT
against aiosmtpd sinks, LMTP against aiosmtpd's LMTP server, HTTP against an aiohttp server;
each from the binding's source address."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from relay.deliver import ConnectError, DeliverySettings, Outcome, Phase, open_connection
from relay.deliver.connection import OutboundConnection
from relay.deliver.http_post import open_http_session
from relay.deliver.route import Destination
from tests.support.fixtures import SinkFactory
from tests.support.http_sink import HttpSink
from tests.support.lmtp_sink import LmtpSink
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


def settings(**fields: Any) -> DeliverySettings:
    values: dict[str, Any] = {"ehlo_hostname": "relay.test", "bind_address": "127.0.0.4"}
    values.update(FAST)
    values.update(fields)
    return DeliverySettings(**values)


async def connect(pol: DeliverySettings, ip: str, port: int) -> OutboundConnection:
    return await open_connection(pol, "example.test", [Destination(ip, ip, port, 0)])


# ---- SMTP: HELO only ------------------------------------------------------------------


async def test_smtp_sends_helo_and_uses_no_extension(smtp_sink: SinkFactory) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(pipelining=True))
    pol = settings(delivery_method=("SMTP",), send_8bitmime="ifavailable")
    async with await connect(pol, "127.0.0.2", sink.port) as conn:
        assert conn.extensions == {} and not conn.pipelining
        results = await conn.send(
            make_message("x@example.test", content=b"S: \xc3\xa9\r\n\r\nb\r\n")
        )
    assert [r.outcome for r in results] == [Outcome.DELIVERED]
    (received,) = sink.messages
    assert received.ehlo == "relay.test" and received.peer_ip == "127.0.0.4"
    assert received.mail_options == []  # no SIZE=, no BODY=8BITMIME: HELO offers nothing


async def test_smtp_with_tls_required_fails_temporarily_naming_the_conflict(
    smtp_sink: SinkFactory,
) -> None:
    sink = await smtp_sink("127.0.0.2")
    with pytest.raises(ConnectError) as caught:
        await connect(settings(delivery_method=("SMTP",), tls="required"), "127.0.0.2", sink.port)
    assert caught.value.outcome is Outcome.TEMPORARY
    assert "delivery_method SMTP" in str(caught.value.reply)
    assert sink.messages == []


# ---- LMTP -------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def lmtp() -> AsyncIterator[LmtpSink]:
    sink = await LmtpSink("127.0.0.7").start()
    yield sink
    await sink.stop()


async def test_lmtp_maps_each_recipients_reply_after_the_final_dot(lmtp: LmtpSink) -> None:
    lmtp.rcpt["nobody@example.test"] = "550 5.1.1 no such user"
    lmtp.replies["full@example.test"] = "452 4.2.2 mailbox full"
    lmtp.replies["gone@example.test"] = "552 5.2.2 over quota for good"
    pol = settings(delivery_method=("LMTP",), lmtp_port=lmtp.port, gateway=("127.0.0.7", None))
    rcpts = ("a@example.test", "full@example.test", "nobody@example.test", "gone@example.test")
    async with await connect(pol, "127.0.0.7", pol.port) as conn:
        results = await conn.send(make_message(*rcpts))
        again = await conn.send(make_message("b@example.test"))  # the session goes on
    assert [(r.recipient, r.outcome) for r in results] == [
        ("a@example.test", Outcome.DELIVERED),
        ("full@example.test", Outcome.TEMPORARY),
        ("nobody@example.test", Outcome.PERMANENT),
        ("gone@example.test", Outcome.PERMANENT),
    ]
    assert [r.phase for r in results] == [Phase.DATA, Phase.DATA, Phase.RCPT, Phase.DATA]
    assert str(results[1].reply) == "452 4.2.2 mailbox full"
    assert str(results[3].reply.enhanced) == "5.2.2"
    assert again[0].outcome is Outcome.DELIVERED
    assert lmtp.delivered == ["a@example.test", "b@example.test"]
    assert lmtp.messages[0].lhlo == "relay.test" and lmtp.messages[0].peer_ip == "127.0.0.4"
    assert lmtp.commands == ["LHLO"]


async def test_lmtp_replies_that_came_stand_when_the_rest_time_out(lmtp: LmtpSink) -> None:
    lmtp.stall_after = 1
    pol = settings(delivery_method=("LMTP",), body_timeout=0.3)
    async with await connect(pol, "127.0.0.7", lmtp.port) as conn:
        results = await conn.send(make_message("a@example.test", "b@example.test"))
        assert not conn.usable
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.TEMPORARY]
    assert results[1].reply.local and "timeout" in str(results[1].reply)


# ---- XCLIENT ------------------------------------------------------------------------------

CLIENT = ("192.0.2.7", "client.example")


async def test_xclient_passes_each_messages_client_and_ehlos_again(
    smtp_sink: SinkFactory,
) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(xclient="NAME ADDR PROTO HELO"))
    pol = settings(xclient="ifavailable")
    async with await connect(pol, "127.0.0.2", sink.port) as conn:
        await conn.send(make_message("x@example.test", client=CLIENT))
        await conn.send(make_message("y@example.test", client=CLIENT))  # the same: not again
        await conn.send(make_message("z@example.test", client=("2001:db8::1", None)))
        await conn.send(make_message("w@example.test"))  # relay's own mail: unknown client
    assert sink.xclient_lines == [
        "NAME=[UNAVAILABLE] ADDR=192.0.2.7 HELO=client.example",
        "NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::1 HELO=[UNAVAILABLE]",
        "NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] HELO=[UNAVAILABLE]",
    ]
    assert [m.xclient["ADDR"] for m in sink.messages if m.xclient] == [
        "192.0.2.7",
        "192.0.2.7",
        "IPV6:2001:db8::1",
        "[UNAVAILABLE]",
    ]
    assert sink.ehlo_names == ["relay.test"] * 4  # the first EHLO, and one after each XCLIENT


async def test_xclient_sends_only_the_attributes_offered(smtp_sink: SinkFactory) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(xclient="ADDR"))
    async with await connect(settings(xclient="required"), "127.0.0.2", sink.port) as conn:
        results = await conn.send(make_message("x@example.test", client=CLIENT))
    assert results[0].outcome is Outcome.DELIVERED
    assert sink.xclient_lines == ["ADDR=192.0.2.7"]


async def test_xclient_never_sent_when_no(smtp_sink: SinkFactory) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(xclient="NAME ADDR HELO"))
    async with await connect(settings(), "127.0.0.2", sink.port) as conn:
        await conn.send(make_message("x@example.test", client=CLIENT))
    assert sink.xclient_lines == [] and len(sink.messages) == 1


async def test_xclient_required_but_not_offered_fails_the_connection_temporarily(
    smtp_sink: SinkFactory,
) -> None:
    sink = await smtp_sink("127.0.0.2")
    with pytest.raises(ConnectError) as caught:
        await connect(settings(xclient="required"), "127.0.0.2", sink.port)
    assert caught.value.outcome is Outcome.TEMPORARY
    assert caught.value.failure.phase is Phase.XCLIENT
    assert "offers no XCLIENT" in str(caught.value.reply)
    async with await connect(settings(xclient="ifavailable"), "127.0.0.2", sink.port) as conn:
        results = await conn.send(make_message("x@example.test", client=CLIENT))
    assert results[0].outcome is Outcome.DELIVERED  # ifavailable: sent without


async def test_xclient_refused_is_temporary_when_required_and_skipped_when_ifavailable(
    smtp_sink: SinkFactory,
) -> None:
    refusal = "550 5.7.0 insufficient authorization"
    script = Script(xclient="NAME ADDR HELO", xclient_replies=[refusal, refusal])
    sink = await smtp_sink("127.0.0.2", script=script)
    async with await connect(settings(xclient="required"), "127.0.0.2", sink.port) as conn:
        refused = await conn.send(make_message("x@example.test", client=CLIENT))
        assert conn.usable
    assert refused[0].outcome is Outcome.TEMPORARY and refused[0].phase is Phase.XCLIENT
    assert "insufficient authorization" in str(refused[0].reply)
    assert sink.messages == []
    async with await connect(settings(xclient="ifavailable"), "127.0.0.2", sink.port) as conn:
        results = await conn.send(make_message("x@example.test", client=CLIENT))
    assert results[0].outcome is Outcome.DELIVERED
    assert sink.messages[0].xclient is None  # delivered without the client's attributes


async def test_xclient_refused_never_sends_under_an_earlier_messages_client(
    smtp_sink: SinkFactory,
) -> None:
    script = Script(xclient="NAME ADDR HELO", xclient_replies=[None, "550 5.7.0 no"])
    sink = await smtp_sink("127.0.0.2", script=script)
    conn = await connect(settings(xclient="ifavailable"), "127.0.0.2", sink.port)
    async with conn:
        first = await conn.send(make_message("x@example.test", client=CLIENT))
        second = await conn.send(make_message("y@example.test", client=("192.0.2.99", "b")))
        assert not conn.usable  # this session speaks for 192.0.2.7
    assert first[0].outcome is Outcome.DELIVERED
    assert second[0].outcome is Outcome.NOT_ATTEMPTED  # requeued for a fresh connection
    async with await connect(settings(xclient="ifavailable"), "127.0.0.2", sink.port) as fresh:
        again = await fresh.send(make_message("y@example.test", client=("192.0.2.99", "b")))
    assert again[0].outcome is Outcome.DELIVERED
    assert [m.xclient["ADDR"] if m.xclient else None for m in sink.messages] == [
        "192.0.2.7",
        "192.0.2.99",
    ]


# ---- HTTP -------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def web() -> AsyncIterator[HttpSink]:
    sink = await HttpSink("127.0.0.8").start()
    yield sink
    await sink.stop()


def http_settings(web: HttpSink, **fields: Any) -> DeliverySettings:
    values: dict[str, Any] = {
        "delivery_method": ("HTTP",),
        "http_host": f"http://127.0.0.8:{web.port}",
        "http_uri": "/inbound/mail",
    }
    values.update(fields)
    return settings(**values)


async def test_http_posts_the_message_with_the_envelope_in_headers(web: HttpSink) -> None:
    pol = http_settings(web, http_basic_auth="relay:s3cret:x", bind_address="127.0.0.5")
    session = await open_http_session(pol, "example.test")
    try:
        message = make_message("x@example.test", "y@example.test", message_id="q-17")
        results = await session.send(message)
    finally:
        await session.close()
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 2
    assert str(results[0].reply).startswith("250 2.0.0 HTTP 201 Created")
    (request,) = web.requests
    assert request.peer_ip == "127.0.0.5"
    assert (request.method, request.path, request.version) == ("POST", "/inbound/mail", "1.1")
    assert request.body == message.content
    assert request.headers["Content-Type"] == "message/rfc822"
    assert request.headers["X-Relay-Mail-From"] == "<a@sender.test>"
    assert request.headers.getall("X-Relay-Rcpt-To") == ["<x@example.test>", "<y@example.test>"]
    assert request.headers["X-Relay-Queue-Id"] == "q-17"
    token = base64.b64encode(b"relay:s3cret:x").decode()
    assert request.headers["Authorization"] == f"Basic {token}"


async def test_http_statuses_map_to_outcomes_and_batches_split(web: HttpSink) -> None:
    web.statuses = [503, 429, 408, 404, 200]
    pol = http_settings(web, http_method="PUT", http_version="1.0", max_recipients_per_batch=1)
    session = await open_http_session(pol, "example.test")
    try:
        rcpts = [f"r{i}@example.test" for i in range(5)]
        results = await session.send(make_message(*rcpts))
    finally:
        await session.close()
    assert [r.outcome for r in results] == [
        Outcome.TEMPORARY,
        Outcome.TEMPORARY,
        Outcome.TEMPORARY,
        Outcome.PERMANENT,
        Outcome.DELIVERED,
    ]
    assert [r.reply.code for r in results] == [451, 451, 451, 554, 250]
    assert "HTTP 404 Not Found" in str(results[3].reply)
    assert [(r.method, r.version) for r in web.requests] == [("PUT", "1.0")] * 5
    assert [r.headers.getall("X-Relay-Rcpt-To") for r in web.requests] == [
        [f"<{a}>"] for a in rcpts
    ]


async def test_http_connection_refused_and_timeout_are_temporary(web: HttpSink) -> None:
    closed = http_settings(web, http_host="http://127.0.0.9:9")  # nothing listens there
    session = await open_http_session(closed, "example.test")
    try:
        refused = await session.send(make_message("x@example.test"))
    finally:
        await session.close()
    assert refused[0].outcome is Outcome.TEMPORARY and refused[0].reply.local
    assert "connection failed" in str(refused[0].reply)

    web.stall = True
    session = await open_http_session(http_settings(web, body_timeout=0.3), "example.test")
    try:
        timed_out = await session.send(make_message("x@example.test"))
    finally:
        await session.close()
    assert timed_out[0].outcome is Outcome.TEMPORARY
    assert "timeout" in str(timed_out[0].reply)


async def test_https_is_verified_against_tls_ca(
    sink_tls: Callable[..., ssl.SSLContext], tls_ca_file: str
) -> None:
    secure = await HttpSink("127.0.0.8", tls_context=sink_tls("127.0.0.8")).start()
    try:
        url = f"https://127.0.0.8:{secure.port}"
        trusted = settings(delivery_method=("HTTP",), http_host=url, tls_ca=tls_ca_file)
        session = await open_http_session(trusted, "example.test")
        try:
            delivered = await session.send(make_message("x@example.test"))
        finally:
            await session.close()
        untrusted = settings(delivery_method=("HTTP",), http_host=url)  # system CAs only
        session = await open_http_session(untrusted, "example.test")
        try:
            refused = await session.send(make_message("x@example.test"))
        finally:
            await session.close()
    finally:
        await secure.stop()
    assert delivered[0].outcome is Outcome.DELIVERED
    assert refused[0].outcome is Outcome.TEMPORARY and refused[0].reply.local
    assert "certificate" in str(refused[0].reply).lower(), refused[0].reply
    assert len(secure.requests) == 1  # the unverified endpoint never got the message
