"""ESMTP end to end: injected with DSN / SMTPUTF8 / SIZE / REQUIRETLS / BDAT, through the
whole daemon, to sinks that do and do not offer those extensions (tests/support/esmtp_sink)."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Sequence
from pathlib import Path

import aiosmtplib
import trustme

from relay.clock import ManualClock
from tests.integration.inject_helpers import tls_files
from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.support.esmtp_sink import EsmtpSink, Got
from tests.support.fixtures import DnsServerFactory
from tests.support.sinks import server_tls_context

ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
    "sender.test": {"MX": ["10 mx.sender.test."]},
    "mx.sender.test": {"A": ["127.0.0.11"]},
}
MESSAGE = b"From: s@sender.test\r\nTo: r@one.test\r\nSubject: hi\r\n\r\nHello.\r\n"
START = 1_800_000_000.0


def config(port: int, extra: str = "") -> str:
    return f"""
remote_smtp_port = {port}
retry_interval = 100
idle_timeout = 0.5
{extra}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
"""


async def inject(
    relay: RelayUnderTest,
    recipients: Sequence[tuple[str, Sequence[str]]],
    *,
    sender: str = "s@sender.test",
    mail_options: Sequence[str] = (),
    content: bytes = MESSAGE,
    tls: ssl.SSLContext | None = None,
) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=10, start_tls=False)
    await smtp.connect()
    try:
        await smtp.ehlo()
        if tls is not None:
            await smtp.starttls(tls_context=tls)
            await smtp.ehlo()
        code, text = await smtp.mail(sender, options=list(mail_options), encoding="utf-8")
        assert code == 250, text
        for address, options in recipients:
            code, text = await smtp.rcpt(address, options=list(options), encoding="utf-8")
            assert code == 250, text
        code, text = await smtp.data(content)
        assert code == 250, text
    finally:
        await smtp.quit()


def report(got: Got) -> tuple[email.message.Message, list[email.message.Message]]:
    """A DSN's header and its delivery-status blocks (per message, then per recipient)."""
    dsn = email.message_from_bytes(got.content)
    parts = dsn.get_payload()
    assert isinstance(parts, list)
    blocks = parts[1].get_payload()
    assert isinstance(blocks, list)
    return dsn, blocks


async def test_dsn_parameters_pass_to_a_dsn_server_and_relay_sends_no_success_dsn(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    dns = await dns_server(ZONE)
    async with (
        EsmtpSink("127.0.0.10", extensions=["PIPELINING", "DSN", "SIZE 100000"]) as mx,
        EsmtpSink("127.0.0.11", mx.port) as senders,
    ):
        relay = await relay_factory(config(mx.port), dns=dns, listener='binding_group = "g"')
        await inject(
            relay,
            [("r@one.test", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;R+40one.test"])],
            mail_options=["RET=HDRS", "ENVID=id+2B7"],
        )
        await relay.wait(lambda: len(mx.messages) == 1)
        (got,) = mx.messages
        assert got.mail.startswith("FROM:<s@sender.test> SIZE=")
        assert got.mail.endswith(" RET=HDRS ENVID=id+2B7")
        assert got.rcpts == ["TO:<r@one.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;R+40one.test"]
        await relay.wait(lambda: relay.events("delivery") != [])
        # the next hop was given NOTIFY=SUCCESS: it reports, relay does not (RFC 3461 4.1)
        assert senders.messages == [] and relay.events("dsn") == []


async def test_success_requested_from_a_server_without_dsn_gets_a_relayed_dsn(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    dns = await dns_server(ZONE)
    async with (
        EsmtpSink("127.0.0.10", extensions=["PIPELINING"]) as mx,
        EsmtpSink("127.0.0.11", mx.port) as senders,
    ):
        relay = await relay_factory(config(mx.port), dns=dns, listener='binding_group = "g"')
        await inject(
            relay,
            [
                ("r@one.test", ["NOTIFY=SUCCESS", "ORCPT=rfc822;Boss+40one.test"]),
                ("quiet@one.test", []),
            ],
            mail_options=["ENVID=batch-42+2B1"],
        )
        await relay.wait(lambda: len(senders.messages) == 1)
        (got,) = mx.messages
        assert got.mail == "FROM:<s@sender.test>" and got.rcpts == [
            "TO:<r@one.test>",
            "TO:<quiet@one.test>",
        ]  # no DSN parameters to a server that does not offer DSN
        dsn, blocks = report(senders.messages[0])
        assert senders.messages[0].sender == ""
        assert "relayed" in str(dsn["Subject"])
        assert blocks[0]["Original-Envelope-Id"] == "batch-42+1"
        (recipient,) = blocks[1:]  # only the one that asked for SUCCESS
        assert recipient["Original-Recipient"] == "rfc822;Boss@one.test"
        assert recipient["Final-Recipient"] == "rfc822; r@one.test"
        assert recipient["Action"] == "relayed" and recipient["Status"] == "2.0.0"


async def test_notify_never_bounce_makes_no_dsn_and_ret_hdrs_returns_headers(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    dns = await dns_server(ZONE)
    async with (
        EsmtpSink("127.0.0.10", extensions=["PIPELINING", "SIZE 300"]) as mx,
        EsmtpSink("127.0.0.11", mx.port) as senders,
    ):
        relay = await relay_factory(config(mx.port), dns=dns, listener='binding_group = "g"')
        big = MESSAGE + b"x" * 400 + b"\r\n"  # over the server's SIZE: a permanent failure
        await inject(relay, [("r@one.test", ["NOTIFY=NEVER"])], content=big)
        await relay.wait(lambda: relay.events("dsn_suppressed") != [])
        assert "NOTIFY" in str(relay.events("dsn_suppressed")[0]["reason"])
        assert relay.events("bounce")[0]["response"].startswith("552 5.3.4")  # type: ignore[union-attr]
        await inject(
            relay,
            [("r@one.test", ["NOTIFY=FAILURE", "ORCPT=rfc822;r+40one.test"])],
            mail_options=["RET=HDRS", "ENVID=e1"],
            content=big,
        )
        await relay.wait(lambda: len(senders.messages) == 1)
        assert mx.messages == []
        assert not any(line.startswith("MAIL") for line in mx.lines)  # never sent
        dsn, blocks = report(senders.messages[0])
        assert blocks[0]["Original-Envelope-Id"] == "e1"
        assert blocks[1]["Original-Recipient"] == "rfc822;r@one.test"
        assert blocks[1]["Status"] == "5.3.4" and "SIZE 300" in blocks[1]["Diagnostic-Code"]
        parts = dsn.get_payload()
        assert isinstance(parts, list)
        assert parts[2].get_content_type() == "text/rfc822-headers"  # RET=HDRS
        assert b"xxxx" not in senders.messages[0].content


async def test_a_utf8_recipient_reaches_an_smtputf8_server_and_fails_cleanly_elsewhere(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    zone = {**ZONE, "xn--bcher-kva.test": {"MX": ["10 mx.two.test."]}}
    zone["mx.two.test"] = {"A": ["127.0.0.12"]}
    dns = await dns_server(zone)
    content = "From: s@sender.test\r\nSubject: Grüße\r\n\r\nHallo.\r\n".encode()
    async with (
        EsmtpSink("127.0.0.10", extensions=["PIPELINING", "8BITMIME", "SMTPUTF8"]) as mx,
        EsmtpSink("127.0.0.11", mx.port) as senders,
        EsmtpSink("127.0.0.12", mx.port, extensions=["8BITMIME"]) as plain,
    ):
        relay = await relay_factory(config(mx.port), dns=dns, listener='binding_group = "g"')
        await inject(
            relay,
            [("jürgen@one.test", []), ("dörte@bücher.test", []), ("ok@bücher.test", [])],
            mail_options=["SMTPUTF8"],
            content=content,
        )
        await relay.wait(lambda: len(mx.messages) == 1 and len(senders.messages) == 1)
        got = mx.messages[0]
        assert got.mail == "FROM:<s@sender.test> SMTPUTF8 BODY=8BITMIME" or ("SMTPUTF8" in got.mail)
        assert got.recipients == ["jürgen@one.test"]
        assert "Grüße".encode() in got.content
        # the UTF-8 headers need SMTPUTF8 too: nothing goes to the server without it
        assert plain.messages == []
        dsn = senders.messages[0].content
        assert dsn.count(b"Status: 5.6.7") == 2
        # RFC 6533: a UTF-8 address is of type utf-8, in a global-delivery-status part
        assert "Final-Recipient: utf-8; dörte@xn--bcher-kva.test".encode() in dsn
        assert b"Final-Recipient: rfc822; ok@xn--bcher-kva.test" in dsn
        assert b"Content-Type: message/global-delivery-status" in dsn
        assert b"Content-Type: message/global-headers" in dsn


async def test_an_ascii_local_part_at_a_utf8_domain_goes_as_a_label_without_smtputf8(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    zone = {**ZONE, "xn--bcher-kva.test": {"MX": ["10 mx.two.test."]}}
    zone["mx.two.test"] = {"A": ["127.0.0.12"]}
    dns = await dns_server(zone)
    async with EsmtpSink("127.0.0.12", extensions=["8BITMIME"]) as plain:
        relay = await relay_factory(config(plain.port), dns=dns, listener='binding_group = "g"')
        await inject(relay, [("ok@bücher.test", [])], mail_options=["SMTPUTF8"])
        await relay.wait(lambda: len(plain.messages) == 1)
        assert plain.messages[0].rcpts == ["TO:<ok@xn--bcher-kva.test>"]
        assert "SMTPUTF8" not in plain.messages[0].mail


async def test_bdat_injected_message_is_delivered(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    import asyncio

    dns = await dns_server(ZONE)
    async with EsmtpSink("127.0.0.10") as mx:
        relay = await relay_factory(config(mx.port), dns=dns, listener='binding_group = "g"')
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        body = b"Subject: chunked\r\n\r\n.\r\n..two dots\r\nend"
        writer.write(
            b"EHLO c\r\nMAIL FROM:<s@sender.test>\r\nRCPT TO:<r@one.test>\r\n"
            + b"BDAT 20\r\n"
            + body[:20]
            + b"BDAT %d LAST\r\n" % (len(body) - 20)
            + body[20:]
            + b"QUIT\r\n"
        )
        replies = (await asyncio.wait_for(reader.read(-1), 10)).decode().splitlines()
        writer.close()
        assert "250 2.0.0 20 octets received" in replies
        assert any(r.startswith("250 2.0.0 OK queued as") for r in replies)
        await relay.wait(lambda: len(mx.messages) == 1)
        assert mx.messages[0].content.endswith(b"\r\n\r\n.\r\n..two dots\r\nend\r\n")


# --- REQUIRETLS --------------------------------------------------------------------------


def _listener_tls(tmp_path: Path) -> tuple[str, ssl.SSLContext]:
    files = tls_files(tmp_path)
    text = f'esmtp_listener {{\n  tls_certificate = "{files.cert}"\n  tls_key = "{files.key}"\n}}\n'
    return text, files.client_context


async def test_a_requiretls_message_never_leaves_in_clear_text(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, tmp_path: Path
) -> None:
    dns = await dns_server(ZONE)
    listener_tls, client = _listener_tls(tmp_path)
    async with (
        EsmtpSink("127.0.0.10", extensions=["PIPELINING", "REQUIRETLS"]) as mx,
        EsmtpSink("127.0.0.11", mx.port) as senders,
    ):
        relay = await relay_factory(
            config(mx.port, listener_tls), dns=dns, listener='binding_group = "g"'
        )
        await inject(relay, [("r@one.test", [])], mail_options=["REQUIRETLS"], tls=client)
        await relay.wait(lambda: len(senders.messages) == 1)
        assert mx.messages == []
        assert not any(line.startswith(("MAIL", "RCPT", "DATA", "BDAT")) for line in mx.lines)
        _, blocks = report(senders.messages[0])
        assert blocks[1]["Status"] == "5.7.10"


async def test_requiretls_with_tls_required_defers_at_a_server_without_starttls(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, tmp_path: Path
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    listener_tls, client = _listener_tls(tmp_path)
    ca = tmp_path / "sink-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    extra = (
        f'{listener_tls}domain "one.test" {{ tls = required tls_verify = host tls_ca = "{ca}" }}'
    )
    async with EsmtpSink("127.0.0.10", extensions=["PIPELINING", "REQUIRETLS"]) as mx:
        relay = await relay_factory(
            config(mx.port, extra), dns=dns, listener='binding_group = "g"', clock=clock
        )
        # TLS-Required: No does not weaken REQUIRETLS (RFC 8689 5: REQUIRETLS wins)
        waiver = MESSAGE.replace(b"Subject: hi\r\n", b"Subject: hi\r\nTLS-Required: No\r\n")
        await inject(
            relay, [("r@one.test", [])], mail_options=["REQUIRETLS"], tls=client, content=waiver
        )
        await relay.wait(lambda: relay.events("transient_failure") != [])
        assert "4.7.4" in str(relay.events("transient_failure")[0]["response"])
        assert mx.messages == [] and not any(line.startswith("MAIL") for line in mx.lines)


async def test_requiretls_goes_over_verified_tls_to_a_requiretls_server(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, tmp_path: Path
) -> None:
    dns = await dns_server(ZONE)
    listener_tls, client = _listener_tls(tmp_path)
    ca = trustme.CA()
    ca_file = tmp_path / "sink-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = server_tls_context(ca.issue_cert("mx.one.test"))
    extra = (
        f'{listener_tls}domain "one.test" {{ tls = required tls_verify = host '
        f'tls_ca = "{ca_file}" }}'
    )
    async with EsmtpSink(
        "127.0.0.10", extensions=["PIPELINING", "REQUIRETLS"], tls_context=server
    ) as mx:
        relay = await relay_factory(config(mx.port, extra), dns=dns, listener='binding_group = "g"')
        await inject(relay, [("r@one.test", [])], mail_options=["REQUIRETLS"], tls=client)
        await relay.wait(lambda: len(mx.messages) == 1)
        assert mx.messages[0].tls and mx.messages[0].mail.endswith(" REQUIRETLS")


async def test_messages_go_by_bdat_to_a_pipelining_chunking_server(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    dns = await dns_server(ZONE)
    large = MESSAGE + b".dot-started line\r\n" + (b"y" * 998 + b"\r\n") * 70  # over 64 kB
    async with EsmtpSink("127.0.0.10", extensions=["PIPELINING", "8BITMIME", "CHUNKING"]) as mx:
        relay = await relay_factory(config(mx.port), dns=dns, listener='binding_group = "g"')
        await inject(relay, [("r@one.test", [])])
        await inject(relay, [("r@one.test", [])], content=large)
        await relay.wait(lambda: len(mx.messages) == 2)
        small, big = sorted(mx.messages, key=lambda m: len(m.content))
        assert small.via == big.via == "BDAT"  # with PIPELINING, small ones too
        assert small.content.endswith(MESSAGE.split(b"\r\n\r\n", 1)[1])
        assert big.content.endswith(large.split(b"\r\n\r\n", 1)[1])  # as spooled, no stuffing
        assert any(line.startswith("BDAT ") and line.endswith(" LAST") for line in mx.lines)


async def test_tls_required_no_lets_a_message_past_the_domains_tls_policy(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, tmp_path: Path
) -> None:
    dns = await dns_server(ZONE)
    ca = tmp_path / "sink-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    extra = f'domain "one.test" {{ tls = required tls_verify = host tls_ca = "{ca}" }}'
    async with EsmtpSink("127.0.0.10", extensions=["PIPELINING"]) as mx:  # no STARTTLS
        relay = await relay_factory(config(mx.port, extra), dns=dns, listener='binding_group = "g"')
        waiver = MESSAGE.replace(b"Subject: hi\r\n", b"Subject: hi\r\nTLS-Required: No\r\n")
        await inject(relay, [("waived@one.test", [])], content=waiver)
        await inject(relay, [("kept@one.test", [])])
        await relay.wait(lambda: len(mx.messages) == 1 and relay.events("transient_failure") != [])
        assert mx.messages[0].recipients == ["waived@one.test"] and not mx.messages[0].tls
        assert [e["recipient"] for e in relay.events("transient_failure")] == ["kept@one.test"]
        assert relay.events("tls_policy_waived")[0]["domain"] == "one.test"


async def test_parameters_survive_injection_workers_and_a_restart(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    """From a worker's spool shard to the scheduler, and back from disk after a restart."""
    dns = await dns_server(ZONE)
    async with EsmtpSink("127.0.0.11") as senders:
        relay = await relay_factory(
            config(senders.port, "injection_workers = 2"), dns=dns, listener='binding_group = "g"'
        )
        # one.test's MX does not answer yet: the message waits in a worker's shard
        await inject(
            relay,
            [("r@one.test", ["NOTIFY=SUCCESS", "ORCPT=rfc822;r+40one.test"])],
            mail_options=["ENVID=kept+2Bsafe"],
        )
        await relay.wait(lambda: relay.events("transient_failure") != [])
        relay = await relay_factory.restart(relay)
        async with EsmtpSink("127.0.0.10", senders.port) as mx:
            scheduler = relay.daemon.scheduler
            assert scheduler is not None
            # the workers announce what they recovered when they are back: flush until then
            await relay.wait(lambda: scheduler.flush() >= 0 and len(mx.messages) == 1)
            await relay.wait(lambda: len(senders.messages) == 1)
        _, blocks = report(senders.messages[0])
        assert blocks[0]["Original-Envelope-Id"] == "kept+safe"
        assert blocks[1]["Original-Recipient"] == "rfc822;r@one.test"
        assert blocks[1]["Action"] == "relayed"


async def test_a_workers_message_and_its_dsn_share_the_workers_shard(
    relay_factory: RelayFactory, dns_server: DnsServerFactory
) -> None:
    """With injection_workers the DSN is stored in the worker's shard that holds the
    message, in the commit that journals the recipient's outcome: a kill keeps both or
    neither (stored in the daemon's own spool, it was a commit of its own before the
    outcome's)."""
    dns = await dns_server(ZONE)
    async with (
        EsmtpSink("127.0.0.11") as senders,
        EsmtpSink("127.0.0.10", senders.port) as mx,
    ):
        relay = await relay_factory(
            config(senders.port, "injection_workers = 1"), dns=dns, listener='binding_group = "g"'
        )
        await inject(relay, [("r@one.test", ["NOTIFY=SUCCESS"])])
        await relay.wait(lambda: len(mx.messages) == 1 and len(senders.messages) == 1)
        _, blocks = report(senders.messages[0])
        assert blocks[1]["Action"] == "relayed"
        assert relay.daemon.shards is not None
        await relay.wait(lambda: len(relay.daemon.shards.owners) == 0)  # type: ignore[union-attr]
        parts = await relay.daemon.spool_statistics()
        assert parts["local"].stored == 0
        assert parts["shard-1"].stored == 2, "the message and its DSN, both in the shard"
        assert sum(p.messages for p in parts.values()) == 0
