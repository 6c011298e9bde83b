"""Each delivery method through the whole daemon: SMTP in on the listener, spool, scheduler,
out from the binding's source address on 127.0.0.x to a real server of that protocol; the
event log says what each recipient's reply came to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiosmtplib
import pytest_asyncio

from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory, RelayUnderTest, free_port
from tests.support.fixtures import SinkFactory
from tests.support.http_sink import HttpSink
from tests.support.lmtp_sink import LmtpSink
from tests.support.sinks import Script, SmtpSink

START = 1_800_000_000.0


async def inject(relay: RelayUnderTest, recipients: list[str], helo: str = "injector.test") -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "s@sender.test", ", ".join(recipients), "methods"
    msg.set_content("Hello over every method.\n")
    await aiosmtplib.send(
        msg,
        sender="s@sender.test",
        recipients=recipients,
        hostname="127.0.0.1",
        port=relay.port,
        local_hostname=helo,
        timeout=10,
    )


def outcomes(relay: RelayUnderTest) -> dict[str, str]:
    found: dict[str, str] = {}
    for kind in ("delivery", "transient_failure", "bounce"):
        for event in relay.events(kind):
            found[str(event["recipient"])] = kind
    return found


def group(domain: str, options: str, source: str = "127.0.0.2") -> str:
    return f"""
binding_group "g" {{
  binding "b1" {{
    bind_address = {source}
    domain "{domain}" {{
{options}
    }}
  }}
}}
"""


async def test_smtp_method_says_helo_and_nothing_else(
    relay_factory: RelayFactory, smtp_sink: SinkFactory
) -> None:
    sink = await smtp_sink("127.0.0.10", script=Script(pipelining=True))
    options = f'delivery_method = "SMTP"\ngateway = "127.0.0.10:{sink.port}"'
    relay = await relay_factory(group("plain.test", options), listener='binding_group = "g"')
    await inject(relay, ["a@plain.test", "b@plain.test"])
    await relay.wait(lambda: len(relay.events("delivery")) == 2)
    assert "HELO" in sink.commands and "EHLO" not in sink.commands
    (received,) = sink.messages
    assert received.peer_ip == "127.0.0.2" and received.mail_options == []


@pytest_asyncio.fixture
async def lmtp() -> AsyncIterator[LmtpSink]:
    sink = await LmtpSink("127.0.0.7").start()
    yield sink
    await sink.stop()


async def test_lmtp_method_maps_each_recipient(relay_factory: RelayFactory, lmtp: LmtpSink) -> None:
    lmtp.rcpt["nobody@local.test"] = "550 5.1.1 no such user"
    lmtp.replies["full@local.test"] = "452 4.2.2 mailbox full"
    lmtp.replies["gone@local.test"] = "552 5.2.2 over quota"
    options = f'delivery_method = "LMTP"\nlmtp_port = {lmtp.port}\ngateway = "127.0.0.7"'
    relay = await relay_factory(
        group("local.test", options, source="127.0.0.3"), listener='binding_group = "g"'
    )
    rcpts = ["a@local.test", "full@local.test", "nobody@local.test", "gone@local.test"]
    await inject(relay, rcpts)
    await relay.wait(lambda: len(outcomes(relay)) == 4)
    assert outcomes(relay) == {
        "a@local.test": "delivery",
        "full@local.test": "transient_failure",
        "nobody@local.test": "bounce",
        "gone@local.test": "bounce",
    }
    assert lmtp.delivered == ["a@local.test"]
    assert lmtp.messages[0].peer_ip == "127.0.0.3" and lmtp.messages[0].lhlo
    (full,) = relay.events("transient_failure")
    assert "452 4.2.2 mailbox full" in str(full["response"])


@pytest_asyncio.fixture
async def web() -> AsyncIterator[HttpSink]:
    sink = await HttpSink("127.0.0.8").start()
    yield sink
    await sink.stop()


async def test_http_method_posts_and_maps_statuses(
    relay_factory: RelayFactory, web: HttpSink
) -> None:
    web.by_recipient = {"busy@web.test": 503, "missing@web.test": 404}
    options = (
        f'delivery_method = "HTTP"\nhttp_host = "127.0.0.8:{web.port}"\n'
        'http_uri = "/mail/in"\nhttp_basic_auth = "relay:secret"\nmax_recipients_per_batch = 1'
    )
    relay = await relay_factory(
        group("web.test", options, source="127.0.0.4"), listener='binding_group = "g"'
    )
    await inject(relay, ["ok@web.test", "busy@web.test", "missing@web.test"])
    await relay.wait(lambda: len(outcomes(relay)) == 3)
    assert outcomes(relay) == {
        "ok@web.test": "delivery",
        "busy@web.test": "transient_failure",
        "missing@web.test": "bounce",
    }
    assert {r.peer_ip for r in web.requests} == {"127.0.0.4"}
    assert {r.path for r in web.requests} == {"/mail/in"}
    ok = next(r for r in web.requests if r.headers["X-Relay-Rcpt-To"] == "<ok@web.test>")
    assert ok.headers["X-Relay-Mail-From"] == "<s@sender.test>"
    assert ok.headers["Authorization"].startswith("Basic ")
    assert b"Received: from injector.test ([127.0.0.1])" in ok.body
    assert b"Hello over every method." in ok.body
    (bounce,) = relay.events("bounce")
    assert "HTTP 404 Not Found" in str(bounce["response"])


async def test_xclient_passes_the_injecting_client_even_after_a_restart(
    relay_factory: RelayFactory,
) -> None:
    clock = ManualClock(START)
    port = free_port("127.0.0.11")  # nothing listens yet: the first attempt fails
    options = f'xclient = "required"\ngateway = "127.0.0.11:{port}"'
    body = "retry_interval = 100\n" + group("next.test", options)
    relay = await relay_factory(body, clock=clock, listener='binding_group = "g"')
    await inject(relay, ["a@next.test"], helo="client.example")
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1)

    clock = ManualClock(START)
    relay = await relay_factory.restart(relay, clock=clock)  # the client comes from the spool
    sink = await SmtpSink("127.0.0.11", port, script=Script(xclient="NAME ADDR HELO")).start()
    try:
        await clock.advance(100)
        await relay.wait(lambda: len(sink.messages) == 1)
    finally:
        await sink.stop()
    assert sink.xclient_lines == ["NAME=[UNAVAILABLE] ADDR=127.0.0.1 HELO=client.example"]
    assert sink.messages[0].xclient == {
        "NAME": "[UNAVAILABLE]",
        "ADDR": "127.0.0.1",
        "HELO": "client.example",
    }
    assert sink.messages[0].peer_ip == "127.0.0.2"
    await asyncio.sleep(0)
