"""OutboundConnection against aiosmtpd sinks on 127.0.0.N, routed by a loopback DNS server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from relay.deliver import (
    ConnectError,
    DeliverySettings,
    Destination,
    FailureKind,
    Outcome,
    Phase,
    Router,
    open_connection,
)
from relay.deliver.connection import OutboundConnection
from tests.support.fixtures import DnsServerFactory, SinkFactory
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


def policy(port: int, **fields: Any) -> DeliverySettings:
    values: dict[str, Any] = {"remote_smtp_port": port, "ehlo_hostname": "relay.test", **FAST}
    values.update(fields)
    return DeliverySettings(**values)


ZONE = {
    "example.test": {"MX": ["10 mx1.example.test.", "20 mx2.example.test."]},
    "mx1.example.test": {"A": ["127.0.0.2"]},
    "mx2.example.test": {"A": ["127.0.0.3"]},
}


async def connect(
    dns_server: DnsServerFactory, pol: DeliverySettings, zone: dict[str, Any] | None = None
) -> OutboundConnection:
    dns = await dns_server(zone or ZONE)
    router = Router(dns.resolver())
    route = await router.resolve(pol, "example.test")
    return await open_connection(pol, "example.test", router.destinations(pol, route))


@pytest.mark.parametrize("source", ["127.0.0.4", "127.0.0.5"])
async def test_source_ip_and_ehlo_name_seen_by_the_sink(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, source: str
) -> None:
    sink = await smtp_sink("127.0.0.2")
    pol = policy(sink.port, bind_address=source, binding="b1")
    async with await connect(dns_server, pol) as conn:
        outcomes = await conn.send(make_message("x@example.test", "y@example.test"))
        assert conn.peer_ip == "127.0.0.2"
        assert conn.mx_host == "mx1.example.test"
    assert [o.outcome for o in outcomes] == [Outcome.DELIVERED] * 2
    assert outcomes[0].reply.code == 250
    assert str(outcomes[0].reply.enhanced) == "2.0.0"
    (received,) = sink.messages
    assert received.peer_ip == source
    assert received.ehlo == "relay.test"
    assert received.rcpt_tos == ["x@example.test", "y@example.test"]
    assert received.mail_from == "a@sender.test"
    assert b"Hello." in received.content


async def test_next_mx_when_the_first_refuses_the_connection(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.3")  # nothing listens on mx1 (127.0.0.2)
    async with await connect(dns_server, policy(sink.port)) as conn:
        assert conn.mx_host == "mx2.example.test"
        outcomes = await conn.send(make_message("x@example.test"))
    assert outcomes[0].outcome is Outcome.DELIVERED
    assert len(sink.messages) == 1


async def test_next_mx_on_421_greeting(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    busy = await smtp_sink("127.0.0.2", script=Script(greeting="421 4.3.2 try later"))
    good = await smtp_sink("127.0.0.3")
    async with await connect(dns_server, policy(good.port)) as conn:
        assert conn.peer_ip == "127.0.0.3"
        await conn.send(make_message("x@example.test"))
    assert busy.connections == 1
    assert len(good.messages) == 1


async def test_every_destination_failing_is_a_temporary_connect_error(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    await smtp_sink("127.0.0.2", script=Script(greeting="554 5.7.1 go away"))
    await smtp_sink("127.0.0.3", script=Script(ehlo=["550 no"], helo=["550 no"]))
    with pytest.raises(ConnectError) as caught:
        await connect(dns_server, policy(smtp_sink.port, binding="b7"))
    error = caught.value
    assert error.outcome is Outcome.TEMPORARY
    assert [a.phase for a in error.attempts] == [Phase.GREETING, Phase.EHLO]
    assert error.attempts[0].reply.code == 554
    assert error.attempts[0].remote is not None
    assert error.attempts[0].remote.ip == "127.0.0.2"
    assert error.failure.binding == "b7"
    assert "mx2.example.test" in str(error)
    assert not error.local_only


async def test_helo_after_refused_ehlo_only_with_smtp_in_delivery_method(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(ehlo=["502 5.5.1 no EHLO"]))
    async with await connect(dns_server, policy(sink.port)) as conn:
        await conn.send(make_message("x@example.test"))
    assert sink.messages[0].ehlo == "relay.test"
    sink.script.ehlo = ["502 5.5.1 no EHLO"]
    with pytest.raises(ConnectError) as caught:
        await connect(dns_server, policy(sink.port, delivery_method=("ESMTP",)))
    assert caught.value.attempts[0].phase is Phase.EHLO


async def test_gateway_with_port_skips_dns(smtp_sink: SinkFactory, tmp_path: Any) -> None:
    sink = await smtp_sink("127.0.0.6")
    pol = policy(25, gateway=("127.0.0.6", sink.port))
    from tests.support.dns_server import DnsServer

    dns = await DnsServer({}, tmp_path).start()  # answers nothing useful: must not be asked
    try:
        router = Router(dns.resolver())
        route = await router.resolve(pol, "anything.test")
        conn = await open_connection(pol, "anything.test", router.destinations(pol, route))
        async with conn:
            await conn.send(make_message("x@anything.test"))
    finally:
        await dns.stop()
    assert dns.queries == []
    assert conn.peer_ip == "127.0.0.6"
    assert len(sink.messages) == 1


async def test_gateway_ipv6_bracket_form(smtp_sink: SinkFactory) -> None:
    from relay.deliver import parse_gateway

    sink = await smtp_sink("::1")
    pol = policy(25, gateway=parse_gateway(f"[::1]:{sink.port}"))
    conn = await open_connection(pol, "v6.test", [Destination("::1", "::1", sink.port, 0)])
    async with conn:
        outcomes = await conn.send(make_message("x@v6.test"))
    assert outcomes[0].outcome is Outcome.DELIVERED
    assert sink.messages[0].peer_ip == "::1"


# ---- TLS -------------------------------------------------------------------------------


async def test_tls_required_without_starttls_is_temporary(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2")
    zone = {**ZONE, "example.test": {"MX": ["10 mx1.example.test."]}}
    with pytest.raises(ConnectError) as caught:
        await connect(dns_server, policy(sink.port, tls="required"), zone)
    assert caught.value.outcome is Outcome.TEMPORARY
    assert caught.value.failure.phase is Phase.STARTTLS
    assert caught.value.failure.kind is FailureKind.TLS
    assert sink.messages == []


@pytest.mark.parametrize("fallback", [True, False])
async def test_ifavailable_with_untrusted_certificate(
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    sink_tls: Any,
    tls_ca_file: str,
    fallback: bool,
) -> None:
    import trustme

    from tests.support.sinks import server_tls_context

    other_ca = trustme.CA()  # the sink's certificate is not from the CA we trust
    context = server_tls_context(other_ca.issue_cert("mx1.example.test"))
    sink = await smtp_sink("127.0.0.2", tls_context=context)
    zone = {**ZONE, "example.test": {"MX": ["10 mx1.example.test."]}}
    pol = policy(
        sink.port,
        tls="ifavailable",
        tls_verify="ca",
        tls_ca=tls_ca_file,
        tls_ifavailable_fallback=fallback,
    )
    if fallback:
        async with await connect(dns_server, pol, zone) as conn:
            assert not conn.tls
            outcomes = await conn.send(make_message("x@example.test"))
        assert outcomes[0].outcome is Outcome.DELIVERED
        assert sink.messages[0].tls is False
        assert sink.connections == 2  # the TLS attempt, then plain text
    else:
        with pytest.raises(ConnectError) as caught:
            await connect(dns_server, pol, zone)
        assert caught.value.outcome is Outcome.TEMPORARY
        assert caught.value.failure.phase is Phase.STARTTLS
        assert sink.messages == []


async def test_tls_verify_host_checks_the_mx_name_not_the_ip(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, sink_tls: Any, tls_ca_file: str
) -> None:
    sink = await smtp_sink("127.0.0.2", tls_context=sink_tls("mx1.example.test"))
    zone = {**ZONE, "example.test": {"MX": ["10 mx1.example.test."]}}
    pol = policy(sink.port, tls="required", tls_verify="host", tls_ca=tls_ca_file)
    async with await connect(dns_server, pol, zone) as conn:
        assert conn.tls
        outcomes = await conn.send(make_message("x@example.test"))
    assert outcomes[0].outcome is Outcome.DELIVERED
    assert sink.messages[0].tls is True
    assert sink.messages[0].ehlo == "relay.test"


async def test_tls_verify_host_refuses_a_certificate_for_another_name(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, sink_tls: Any, tls_ca_file: str
) -> None:
    sink = await smtp_sink("127.0.0.2", tls_context=sink_tls("other.test"))
    zone = {**ZONE, "example.test": {"MX": ["10 mx1.example.test."]}}
    pol = policy(sink.port, tls="required", tls_verify="host", tls_ca=tls_ca_file)
    with pytest.raises(ConnectError) as caught:
        await connect(dns_server, pol, zone)
    assert caught.value.failure.kind is FailureKind.TLS
    assert caught.value.outcome is Outcome.TEMPORARY


# ---- transactions -----------------------------------------------------------------------


async def test_batches_of_max_recipients_per_batch(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2")
    recipients = [f"r{i}@example.test" for i in range(250)]
    async with await connect(dns_server, policy(sink.port, max_recipients_per_batch=100)) as conn:
        outcomes = await conn.send(make_message(*recipients))
        assert conn.recipients_sent == 250
        assert conn.deliveries == 1
    assert [len(m.rcpt_tos) for m in sink.messages] == [100, 100, 50]
    assert [o.recipient for o in outcomes] == recipients
    assert all(o.outcome is Outcome.DELIVERED for o in outcomes)


async def test_max_deliveries_per_connection_makes_the_connection_unusable(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2")
    conn = await connect(dns_server, policy(sink.port, max_deliveries_per_connection=2))
    async with conn:
        await conn.send(make_message("a@example.test"))
        assert conn.usable
        await conn.send(make_message("b@example.test"))
        assert not conn.usable
        late = await conn.send(make_message("c@example.test"))
    assert late[0].outcome is Outcome.NOT_ATTEMPTED
    assert conn.deliveries == 2
    assert len(sink.messages) == 2
    assert sink.connections == 1


async def test_max_recipients_per_connection_leaves_the_rest_not_attempted(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2")
    conn = await connect(dns_server, policy(sink.port, max_recipients_per_connection=3))
    async with conn:
        outcomes = await conn.send(make_message(*(f"r{i}@example.test" for i in range(5))))
        assert not conn.usable
    assert [o.outcome for o in outcomes] == [Outcome.DELIVERED] * 3 + [Outcome.NOT_ATTEMPTED] * 2
    assert sink.recipients == ["r0@example.test", "r1@example.test", "r2@example.test"]


async def test_mixed_replies_are_split_per_recipient(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    script = Script(
        rcpt={
            "bad@example.test": ["550 5.1.1 no such user"],
            "later@example.test": ["451 4.3.0 try later", "451 4.3.0 try later"],
        }
    )
    sink = await smtp_sink("127.0.0.2", script=script)
    message = make_message("ok@example.test", "bad@example.test", "later@example.test")
    async with await connect(dns_server, policy(sink.port)) as conn:
        first = await conn.send(message)
        second = await conn.send(make_message("later@example.test"))
        third = await conn.send(make_message("later@example.test"))
    assert [o.outcome for o in first] == [Outcome.DELIVERED, Outcome.PERMANENT, Outcome.TEMPORARY]
    assert first[1].reply.code == 550
    assert str(first[1].reply.enhanced) == "5.1.1"
    assert first[1].phase is Phase.RCPT
    assert first[1].remote is not None and first[1].remote.mx_host == "mx1.example.test"
    assert second[0].outcome is Outcome.TEMPORARY
    assert third[0].outcome is Outcome.DELIVERED
    assert sink.recipients == ["ok@example.test", "later@example.test"]


async def test_refused_sender_then_rset_and_next_message(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(mail=["550 5.7.1 sender blocked"]))
    async with await connect(dns_server, policy(sink.port, max_recipients_per_batch=1)) as conn:
        refused = await conn.send(make_message("a@example.test", "b@example.test"))
        assert conn.usable
        accepted = await conn.send(make_message("c@example.test"))
    assert [o.outcome for o in refused] == [Outcome.PERMANENT, Outcome.PERMANENT]
    assert refused[0].phase is Phase.MAIL
    assert accepted[0].outcome is Outcome.DELIVERED
    assert sink.commands.count("MAIL") == 2  # the refusal holds for the second batch too
    assert "RSET" in sink.commands


async def test_data_rejection_applies_to_the_accepted_recipients(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    script = Script(data=["554 5.6.0 content rejected"], rcpt={"bad@example.test": ["550 no"]})
    sink = await smtp_sink("127.0.0.2", script=script)
    async with await connect(dns_server, policy(sink.port)) as conn:
        outcomes = await conn.send(make_message("a@example.test", "bad@example.test"))
    assert [(o.outcome, o.reply.code, o.phase) for o in outcomes] == [
        (Outcome.PERMANENT, 554, Phase.DATA),
        (Outcome.PERMANENT, 550, Phase.RCPT),
    ]


async def test_reply_without_a_valid_code_is_temporary_and_closes(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(rcpt={"*": ["hello there"]}))
    conn = await connect(dns_server, policy(sink.port, max_recipients_per_batch=1))
    async with conn:
        outcomes = await conn.send(make_message("a@example.test", "b@example.test"))
        assert not conn.usable
    assert outcomes[0].outcome is Outcome.TEMPORARY
    assert outcomes[0].reply.code is None
    assert outcomes[1].outcome is Outcome.NOT_ATTEMPTED


async def test_response_transcode_rewrites_before_classifying(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    script = Script(rcpt={"x@example.test": ["454 no such user 'x'"]})
    sink = await smtp_sink("127.0.0.2", script=script)
    pol = policy(
        sink.port,
        response_transcode_pattern="454 no such user ('.*')",
        response_transcode_replace="554 5.1.1 no such user $1",
    )
    async with await connect(dns_server, pol) as conn:
        (outcome,) = await conn.send(make_message("x@example.test"))
    assert outcome.outcome is Outcome.PERMANENT
    assert str(outcome.reply) == "554 5.1.1 no such user 'x'"


# ---- timeouts ------------------------------------------------------------------------------


async def test_stall_after_ehlo_times_out_in_mail_phase(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(stall="MAIL"))
    conn = await connect(dns_server, policy(sink.port, mailfrom_timeout=0.3))
    async with conn:
        started = time.monotonic()
        (outcome,) = await conn.send(make_message("x@example.test"))
        elapsed = time.monotonic() - started
        assert not conn.usable
    assert outcome.outcome is Outcome.TEMPORARY
    assert outcome.phase is Phase.MAIL
    assert outcome.reply.local
    assert "timeout" in outcome.reply.text
    assert 0.25 < elapsed < 1.5


async def test_stalled_ehlo_moves_on_after_ehlo_timeout(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    await smtp_sink("127.0.0.2", script=Script(stall="EHLO"))
    good = await smtp_sink("127.0.0.3")
    started = time.monotonic()
    async with await connect(dns_server, policy(good.port, ehlo_timeout=0.3)) as conn:
        assert conn.peer_ip == "127.0.0.3"
    assert time.monotonic() - started < 1.5


async def test_stalled_data_reply_is_temporary(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(stall="DATA"))
    async with await connect(dns_server, policy(sink.port, body_timeout=0.3)) as conn:
        (outcome,) = await conn.send(make_message("x@example.test"))
    assert outcome.outcome is Outcome.TEMPORARY
    assert outcome.phase is Phase.DATA


async def test_connect_timeout_covers_a_server_that_never_greets() -> None:
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(silent, "127.0.0.8", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            await open_connection(
                policy(port, connect_timeout=0.3),
                "x.test",
                [Destination("mx.x.test", "127.0.0.8", port, 0)],
            )
        assert time.monotonic() - started < 1.5
        assert caught.value.failure.kind is FailureKind.TIMEOUT
        assert caught.value.failure.phase is Phase.GREETING
        await asyncio.wait_for(closed.wait(), 1)  # the client closed its side
    finally:
        server.close()
        await server.wait_closed()


# ---- 8BITMIME ------------------------------------------------------------------------------

EIGHT_BIT = (
    "From: a@sender.test\r\nSubject: test\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "\r\nh\u00e9llo w\u00f6rld\r\n"
).encode()
EIGHT_BIT_HEADER = "From: a@sender.test\r\nSubject: h\u00e9\r\n\r\nplain\r\n".encode()


@pytest.mark.parametrize(
    ("offered", "send", "transform", "content", "expect"),
    [
        (True, "ifavailable", "ifneeded", EIGHT_BIT, "8bitmime"),
        (True, "no", "ifneeded", EIGHT_BIT, "as-is"),
        (False, "ifavailable", "ifneeded", EIGHT_BIT, "qp"),
        (False, "ifavailable", "no", EIGHT_BIT, "as-is"),
        (False, "ifavailable", "strip", EIGHT_BIT, "stripped"),
        (False, "ifavailable", "strict", EIGHT_BIT, "qp"),
        (False, "ifavailable", "strict", EIGHT_BIT_HEADER, "refused"),
    ],
)
async def test_8bitmime_modes(
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    offered: bool,
    send: str,
    transform: str,
    content: bytes,
    expect: str,
) -> None:
    sink = await smtp_sink("127.0.0.2", script=Script(eightbitmime=offered))
    pol = policy(sink.port, send_8bitmime=send, transform_8bitmime_content=transform)
    async with await connect(dns_server, pol) as conn:
        (outcome,) = await conn.send(make_message("x@example.test", content=content))
    if expect == "refused":
        assert outcome.outcome is Outcome.PERMANENT
        assert str(outcome.reply.enhanced) == "5.6.3"
        assert sink.messages == []
        return
    assert outcome.outcome is Outcome.DELIVERED
    (received,) = sink.messages
    body_8bit = [o.upper() for o in received.mail_options if o.upper().startswith("BODY=")]
    assert body_8bit == (["BODY=8BITMIME"] if expect == "8bitmime" else [])
    if expect in ("8bitmime", "as-is"):
        assert received.content.replace(b"\r\n", b"\n") == content.replace(b"\r\n", b"\n")
    elif expect == "qp":
        assert received.content.isascii()
        assert b"Content-Transfer-Encoding: quoted-printable" in received.content
        assert b"h=C3=A9llo" in received.content
    else:
        assert received.content.isascii()
        assert bytes(b & 0x7F for b in content).replace(b"\r\n", b"\n") == (
            received.content.replace(b"\r\n", b"\n")
        )


# ---- host gate ------------------------------------------------------------------------------


async def test_host_gate_vetoes_and_is_held_until_close(smtp_sink: SinkFactory) -> None:
    sink = await smtp_sink("127.0.0.2")
    held: list[str] = []

    @contextlib.asynccontextmanager
    async def gate(ip: str) -> AsyncIterator[bool]:
        if ip == "127.0.0.9":
            yield False
            return
        held.append(ip)
        try:
            yield True
        finally:
            held.remove(ip)

    destinations = [
        Destination("mx0.x.test", "127.0.0.9", sink.port, 0),
        Destination("mx1.x.test", "127.0.0.2", sink.port, 10),
    ]
    conn = await open_connection(policy(sink.port), "x.test", destinations, host_gate=gate)
    assert held == ["127.0.0.2"]
    await conn.close()
    assert held == []

    with pytest.raises(ConnectError) as caught:
        await open_connection(policy(sink.port), "x.test", destinations[:1], host_gate=gate)
    assert caught.value.local_only
    assert caught.value.failure.phase is Phase.GATE


async def test_lazy_resolution_resolves_later_hosts_only_when_needed(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2")
    dns = await dns_server(ZONE)
    pol = policy(sink.port, fully_resolve_before_smtp=False)
    router = Router(dns.resolver())
    route = await router.resolve(pol, "example.test")
    assert route.destinations is None
    async with await open_connection(pol, "example.test", router.destinations(pol, route)):
        pass
    assert ("mx2.example.test", "A") not in dns.queries


async def test_source_socket_binds_without_reserving_a_port(smtp_sink: SinkFactory) -> None:
    import socket

    from relay.deliver.connection import _IP_BIND_ADDRESS_NO_PORT, _connect_socket

    sink = await smtp_sink("127.0.0.2")
    pol = policy(sink.port, bind_address="127.0.0.3")
    sock = await _connect_socket(pol, Destination("mx", "127.0.0.2", sink.port, 0))
    try:
        assert sock.getsockname()[0] == "127.0.0.3"
        assert sock.getsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT) == 1
    finally:
        sock.close()


async def test_unsendable_sender_is_refused_without_breaking_the_connection(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.2")
    async with await connect(dns_server, policy(sink.port)) as conn:
        bad = await conn.send(make_message("x@example.test", sender="a\r\nRCPT TO:<y>@x"))
        assert conn.usable
        good = await conn.send(make_message("x@example.test"))
    assert bad[0].outcome is Outcome.PERMANENT
    assert good[0].outcome is Outcome.DELIVERED
