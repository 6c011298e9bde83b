"""DKIM end to end: mail injected over SMTP into the running daemon reaches a real sink
signed (RSA and Ed25519 side by side), and the signatures verify with dkimpy against the
loopback DNS server's TXT records; unsigned mail is logged; workers sign too."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiosmtplib
import pytest

from relay.config import ConfigError, loads
from relay.sign.pool import pool_for
from tests.integration.relay_harness import RelayFactory
from tests.support.dkim_tools import signature_tags, txt_records, verify_all, write_key
from tests.support.fixtures import DnsServerFactory, SinkFactory

ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "two.test": {"MX": ["10 mx.one.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
}


def signing_config(tmp_path: Path, port: int, extra: str = "") -> str:
    return f"""
{extra}
remote_smtp_port = {port}
binding_group "news" {{ binding "n1" {{ bind_address = 127.0.0.2 }} }}
binding_group "plain" {{
  opendkim_sign = false
  binding "p1" {{ bind_address = 127.0.0.3 }}
  domain "two.test" {{ opendkim_sign = true }}
}}
opendkim "rsa" {{
  header_canon = "relaxed"
  body_canon = "relaxed"
  headerlist = ( "from" "to" "subject" "date" "message-id" "x-binding-group" )
  key = "{tmp_path}/keys/%{{d}}/%{{s}}.pem"
  selector = "r2026"
}}
opendkim "ed" {{
  digest = "ed25519-sha256"
  key = "{tmp_path}/keys/%{{d}}/ed.pem"
  selector = "e2026"
}}
"""


def make_keys(tmp_path: Path) -> dict[tuple[str, str], Path]:
    return {
        ("r2026", "sender.test"): write_key(tmp_path / "keys" / "sender.test" / "r2026.pem"),
        ("e2026", "sender.test"): write_key(
            tmp_path / "keys" / "sender.test" / "ed.pem", "ed25519"
        ),
    }


async def test_injected_mail_arrives_signed_and_verifies(
    relay_factory: RelayFactory,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tmp_path: Path,
) -> None:
    dns = await dns_server({**ZONE, **txt_records(make_keys(tmp_path))})
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(signing_config(tmp_path, smtp_sink.port), dns=dns)
    body = "Grüße\n" + "long line " * 80 + "\n\n\n"
    await relay.send(
        "news@sender.test", ["a@one.test"], headers={"X-Binding-Group": "news"}, body=body
    )
    await relay.send("news@nokey.test", ["b@one.test"], headers={"X-Binding-Group": "news"})
    await relay.send("news@sender.test", ["c@one.test"], headers={"X-Binding-Group": "plain"})
    # Signed once for all recipients when any recipient domain asks for it.
    await relay.send(
        "news@sender.test", ["d@one.test", "e@two.test"], headers={"X-Binding-Group": "plain"}
    )
    await relay.wait(
        lambda: len(sink.messages) >= 4 and sum(len(m.rcpt_tos) for m in sink.messages) == 5
    )
    by_rcpt = {r: m.content for m in sink.messages for r in m.rcpt_tos}
    assert by_rcpt["d@one.test"] == by_rcpt["e@two.test"]
    assert await verify_all(by_rcpt["e@two.test"], dns) == [True, True]

    signed = by_rcpt["a@one.test"]
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert await verify_all(signed, dns) == [True, True]
    rsa, ed = signature_tags(signed, 0), signature_tags(signed, 1)
    assert (rsa["a"], rsa["d"], rsa["s"]) == ("rsa-sha256", "sender.test", "r2026")
    assert (ed["a"], ed["d"], ed["s"]) == ("ed25519-sha256", "sender.test", "e2026")
    assert "x-binding-group" not in rsa["h"] and b"X-Binding-Group" not in signed
    assert rsa["h"].split(":")[:2] == ["from", "to"]

    assert b"DKIM-Signature" not in by_rcpt["b@one.test"]  # no key for nokey.test
    assert b"DKIM-Signature" not in by_rcpt["c@one.test"]  # opendkim_sign = false
    unsigned = relay.events("dkim_unsigned")
    assert len(unsigned) == 1
    assert unsigned[0]["domain"] == "nokey.test"
    assert unsigned[0]["reason"] == "no DKIM key for the From: domain nokey.test"
    receptions = {e["message_id"] for e in relay.events("reception")}
    assert unsigned[0]["message_id"] in receptions


async def test_a_retry_sends_the_same_signed_bytes(
    relay_factory: RelayFactory,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tmp_path: Path,
) -> None:
    from tests.support.sinks import Script

    dns = await dns_server({**ZONE, **txt_records(make_keys(tmp_path))})
    sink = await smtp_sink("127.0.0.10", script=Script(data=["451 4.3.0 later"]))
    relay = await relay_factory(
        signing_config(tmp_path, smtp_sink.port, "retry_interval = 0.2"), dns=dns
    )
    await relay.send("news@sender.test", ["a@one.test"], headers={"X-Binding-Group": "news"})
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1, within=15)
    message_id = str(relay.events("transient_failure")[0]["message_id"])
    assert relay.daemon.spool is not None
    spooled = await relay.daemon.spool.load(message_id)  # signed once, before spooling
    assert spooled.startswith(b"DKIM-Signature:")
    await relay.wait(lambda: len(sink.messages) == 1, within=15)
    assert relay.events("delivery")[0]["message_id"] == message_id
    assert sink.messages[0].content == spooled  # the retry sent the very same bytes
    assert await verify_all(spooled, dns) == [True, True]


async def test_a_bad_key_on_reload_keeps_the_running_configuration(
    relay_factory: RelayFactory, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    make_keys(tmp_path)
    relay = await relay_factory(signing_config(tmp_path, 25))
    before = relay.daemon.settings
    (tmp_path / "keys" / "sender.test" / "ed.pem").write_text("damaged\n")
    text = (tmp_path / "relay.conf").read_text()
    with pytest.raises(ConfigError, match=r"relay.conf:\d+:3: key: key file .*ed.pem is not a PEM"):
        await relay.daemon.reload(loads(text, str(tmp_path / "relay.conf")))
    assert relay.daemon.settings is before


async def test_injection_workers_sign_too(
    relay_factory: RelayFactory,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tmp_path: Path,
) -> None:
    dns = await dns_server({**ZONE, **txt_records(make_keys(tmp_path))})
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        signing_config(tmp_path, smtp_sink.port, "injection_workers = 1"), dns=dns
    )
    assert len(relay.daemon.workers) == 1
    await relay.send("news@sender.test", ["a@one.test"], headers={"X-Binding-Group": "news"})
    await relay.send("news@nokey.test", ["b@one.test"], headers={"X-Binding-Group": "news"})
    await relay.wait(lambda: len(sink.messages) == 2, within=20)
    by_rcpt = {m.rcpt_tos[0]: m.content for m in sink.messages}
    assert await verify_all(by_rcpt["a@one.test"], dns) == [True, True]
    await relay.wait(lambda: len(relay.events("dkim_unsigned")) == 1)
    assert relay.events("dkim_unsigned")[0]["domain"] == "nokey.test"


async def test_a_signing_process_that_dies_costs_a_451_and_nothing_else(
    relay_factory: RelayFactory,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tmp_path: Path,
) -> None:
    """A message whose signing process dies under it is answered 451 (never 250 unsigned,
    never spooled); the next message gets a new process and goes signed."""
    dns = await dns_server({**ZONE, **txt_records(make_keys(tmp_path))})
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(signing_config(tmp_path, smtp_sink.port), dns=dns)
    headers = {"X-Binding-Group": "news"}
    await relay.send("news@sender.test", ["a@one.test"], headers=headers)  # starts them
    signers = pool_for(asyncio.get_running_loop())
    before = signers.pids()
    for pid in before:  # stopped: the next message's job waits in one of them
        os.kill(pid, signal.SIGSTOP)
    refused = asyncio.create_task(relay.send("news@sender.test", ["b@one.test"], headers=headers))
    await relay.wait(lambda: any(p is not None and p.pending for p in signers.processes))
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(aiosmtplib.SMTPDataError) as answer:
        await refused
    assert answer.value.code == 451
    await relay.send("news@sender.test", ["c@one.test"], headers=headers)
    await relay.wait(lambda: len(sink.messages) == 2, within=15)
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["a@one.test", "c@one.test"]
    for message in sink.messages:
        assert await verify_all(message.content, dns) == [True, True]
    assert not set(signers.pids()) & set(before)
    assert [e["message_id"] for e in relay.events("reception")] == [
        e["message_id"] for e in relay.events("delivery")
    ]
