"""A reload (SIGHUP or the admin API) reaches injection too: a binding group added to the
file is accepted by new sessions, in one process and in every injection worker, and the
listen addresses follow the file."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from relay.config import load
from tests.integration.relay_harness import RelayFactory, RelayUnderTest, free_port
from tests.support.fixtures import DnsServerFactory, SinkFactory

ZONE = {"one.test": {"MX": ["10 mx.one.test."]}, "mx.one.test": {"A": ["127.0.0.10"]}}
GROUP_H = 'binding_group "h" {\n  binding "h1" { bind_address = 127.0.0.4 }\n}\n'


def config(port: int, workers: int) -> str:
    return f"""
injection_workers = {workers}
remote_smtp_port = {port}
binding_group "g" {{
  binding "g1" {{ bind_address = 127.0.0.2 }}
}}
"""


async def _send_to_h(relay: RelayUnderTest, rcpt: str) -> None:
    await relay.send("s@sender.test", [rcpt], headers={"X-Binding-Group": "h"})


async def _reload_with_group_h(relay: RelayUnderTest) -> None:
    path = relay.directory / "relay.conf"
    path.write_text(path.read_text() + GROUP_H)
    await relay.daemon.reload(load(str(path)))


@pytest.mark.parametrize("workers", [0, 2])
async def test_a_group_added_by_reload_is_accepted_at_injection(
    relay_factory: RelayFactory,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    workers: int,
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(smtp_sink.port, workers), dns=dns, listener='binding_group = "g"'
    )
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await _send_to_h(relay, "before@one.test")
    assert refused.value.code == 550 and '"h"' in refused.value.message

    await _reload_with_group_h(relay)
    # Workers read the file again on the SIGHUP the daemon sends them: poll until every
    # worker has (each new connection may land on either).
    accepted = 0
    for attempt in range(100):
        try:
            await _send_to_h(relay, f"after{attempt}@one.test")
            accepted += 1
            if accepted >= 6:
                break
        except aiosmtplib.SMTPDataError:
            accepted = 0
            await asyncio.sleep(0.1)
    assert accepted >= 6
    await relay.wait(lambda: len(sink.messages) >= 6, within=20)
    assert {m.peer_ip for m in sink.messages} == {"127.0.0.4"}  # group h's only binding


async def test_listen_addresses_follow_a_reload(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    """A new `listen` opens at reload, one taken out stops accepting; a session already
    open on it still finishes its message."""
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(config(smtp_sink.port, 0), dns=dns, listener='binding_group = "g"')
    old_port = relay.port
    lingering = aiosmtplib.SMTP(hostname="127.0.0.1", port=old_port, timeout=5)
    await lingering.connect()
    await lingering.ehlo()

    new_port = free_port()
    path = relay.directory / "relay.conf"
    text = path.read_text().replace(
        f'listen "127.0.0.1:{old_port}"', f'listen "127.0.0.1:{new_port}"'
    )
    path.write_text(text)
    await relay.daemon.reload(load(str(path)))

    assert relay.daemon.listeners is not None
    assert [b.listen for b in relay.daemon.listeners.bound] == [f"127.0.0.1:{new_port}"]
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.SMTP(hostname="127.0.0.1", port=old_port, timeout=2).connect()
    relay.port = new_port
    await relay.send("s@sender.test", ["new@one.test"])
    # The session opened before the reload is still served.
    await lingering.sendmail("s@sender.test", ["old@one.test"], b"Subject: x\r\n\r\nhi\r\n")
    await lingering.quit()
    await relay.wait(lambda: len(sink.messages) == 2, within=20)
