"""Event webhooks against a real HTTP receiver: a receiver that is down for a while gets
every event after it comes back, in order per message, signed; the cursor survives a
restart; a bad webhook stops the start with the operator's message."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from relay.clock import ManualClock
from relay.config import ConfigError, loads
from relay.wiring import compile_settings
from tests.integration.relay_harness import RelayFactory, free_port
from tests.support.fixtures import DnsServerFactory, SinkFactory

ZONE = {"one.test": {"MX": ["10 mx.one.test."]}, "mx.one.test": {"A": ["127.0.0.10"]}}
SECRET = b"webhook-secret-0123456789"


class Receiver:
    def __init__(self) -> None:
        self.down = True
        self.posts: list[list[dict[str, Any]]] = []
        self.refused = 0
        self.bad_signatures = 0
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.down:
            self.refused += 1
            return web.Response(status=503)
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if request.headers.get("X-Relay-Signature") != expected:
            self.bad_signatures += 1
        self.posts.append(json.loads(body))
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    def events(self) -> list[dict[str, Any]]:
        return [event for post in self.posts for event in post]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    yield started
    assert started.runner is not None
    await started.runner.cleanup()


async def until(clock: ManualClock, predicate: Callable[[], bool], steps: int = 400) -> None:
    for _ in range(steps):  # bounded: 400 steps of 0.5 s of relay time
        if predicate():
            return
        await clock.advance(0.5)
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_receiver_down_for_a_while_gets_every_event(
    relay_factory: RelayFactory,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    clock = ManualClock(1_800_000_000.0)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    secret = tmp_path / "hook.secret"
    secret.write_bytes(SECRET + b"\n")
    body = f"""
remote_smtp_port = {smtp_sink.port}
webhook "ops" {{
  url = "http://127.0.0.1:{receiver.port}/hook"
  events = ( reception delivery )
  batch_size = 3
  max_delay = 1
  secret_file = "{secret}"
}}
"""
    relay = await relay_factory(body, dns=dns, clock=clock)
    for i in range(5):
        await relay.send("s@sender.test", [f"r{i}@one.test"])
    await relay.wait(lambda: len(sink.messages) == 5)
    await until(clock, lambda: receiver.refused >= 4)  # down: retried, backing off
    assert receiver.posts == []
    receiver.down = False
    await until(clock, lambda: len(receiver.events()) >= 10)
    assert receiver.bad_signatures == 0
    assert all(len(post) <= 3 for post in receiver.posts)
    kinds: dict[str, list[str]] = {}
    for event in receiver.events():
        kinds.setdefault(str(event["message_id"]), []).append(str(event["event"]))
    assert len(kinds) == 5
    assert all(seen[0] == "reception" and "delivery" in seen for seen in kinds.values())
    assert {e["event"] for e in receiver.events()} == {"reception", "delivery"}
    summary = relay.daemon.webhooks[0].statistics
    assert summary.sent >= 10 and summary.failures >= 4 and summary.lost == 0

    # A restart goes on from the cursor: the next message's events, nothing lost.
    relay = await relay_factory.restart(relay, clock=clock)
    await relay.send("s@sender.test", ["late@one.test"])
    await relay.wait(lambda: len(sink.messages) == 6)
    await until(clock, lambda: len({str(e["message_id"]) for e in receiver.events()}) == 6)
    await until(clock, lambda: sum(e["event"] == "delivery" for e in receiver.events()) >= 6)
    assert sum(e["event"] == "reception" for e in receiver.events()) == 6  # none resent twice


def test_webhook_refusals_name_the_option(tmp_path: Path) -> None:
    for text, expected in (
        ('webhook "w" { url = "ftp://x" }\n', "<text>:1:15: url: 'ftp://x' is not an http://"),
        ('webhook "a/b" { url = "http://127.0.0.1:9/" }\n', "webhook: webhook name 'a/b'"),
        ('webhook "w" { batch_size = 3 }\n', 'webhook: webhook "w" needs url'),
    ):
        with pytest.raises(ConfigError) as caught:
            compile_settings(loads(text))
        assert expected in str(caught.value), str(caught.value)


def test_an_unreadable_secret_file_stops_the_start(tmp_path: Path) -> None:
    from tests.integration.test_admin_http import start_refusal

    missing = tmp_path / "nope.secret"
    text = f'webhook "w" {{ url = "http://127.0.0.1:9/" secret_file = "{missing}" }}\n'
    (problem,) = start_refusal(tmp_path, text).problems
    assert str(problem).startswith(f'{missing}:0:0: secret_file: webhook "w": cannot read it')
