"""Message and queue control over the admin API against a running relay: message lookup,
bounce and delete by filter, rebind, suspend/resume a whole destination domain."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.integration.test_admin_http import call, inject
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

START = 1_800_000_000.0
ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "two.test": {"MX": ["10 mx.one.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
}


def config(port: int) -> str:
    return f"""
remote_smtp_port = {port}
retry_interval = 100
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
binding_group "other" {{
  binding "o1" {{ bind_address = 127.0.0.3 }}
}}
"""


async def admin(relay: RelayUnderTest, path: str, body: Any) -> tuple[int, Any]:
    status, answer, _ = await call(relay, "POST", path, body, token=relay.tokens["admin"])
    return status, answer


async def test_lookup_bounce_delete_rebind(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 later"] * 3}))
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, clock=clock, listener='binding_group = "g"'
    )
    ids = {}
    for name, sender, rcpt in (
        ("a", "s1@sender.test", "a@one.test"),
        ("b", "s2@sender.test", "b@two.test"),
        ("c", "s2@sender.test", "c@one.test"),
    ):
        status, answer = await inject(
            relay, {"from": sender, "to": [rcpt], "text": name, "binding_group": "g"}
        )
        assert status == 201
        ids[name] = answer["id"]
    await relay.wait(lambda: len(relay.events("transient_failure")) == 3)

    status, found, _ = await call(
        relay, "GET", f"/api/v1/messages/{ids['a']}", token=relay.tokens["read"]
    )
    assert status == 200
    assert found["sender"] == "s1@sender.test" and found["binding_group"] == "g"
    (rcpt,) = found["recipients"]
    assert rcpt["recipient"] == "a@one.test" and rcpt["state"] == "pending"
    assert rcpt["attempts"] == 1 and rcpt["next_attempt"] > START
    assert rcpt["last_reply"].startswith("451 4.3.2")
    status, answer, _ = await call(
        relay, "GET", "/api/v1/messages/nope", token=relay.tokens["read"]
    )
    assert status == 404 and answer["error"] == "no message 'nope' in the spool"

    assert (await admin(relay, "/api/v1/bounce", {}))[0] == 400  # an empty filter takes all
    status, answer = await admin(relay, "/api/v1/bounce", {"domain": "x", "tenant": 5})
    assert (status, answer["field"]) == (400, "tenant")
    status, answer = await admin(relay, "/api/v1/bounce", {"older_than": "soon"})
    assert (status, answer["field"]) == (400, "older_than")
    assert (await admin(relay, "/api/v1/bounce", {"older_than": "1 hour"})) == (
        200,
        {"bounced": {"messages": 0, "recipients": 0}},
    )
    status, answer = await admin(
        relay, "/api/v1/bounce", {"domain": "one.test", "sender": "s1@sender.test"}
    )
    assert (status, answer) == (200, {"bounced": {"messages": 1, "recipients": 1}})
    (bounce,) = [e for e in relay.events("bounce") if e["message_id"] == ids["a"]]
    assert bounce["response"] == "550 5.0.0 bounced by the operator"
    (dsn,) = relay.events("dsn")
    assert (dsn["message_id"], dsn["to"], dsn["action"]) == (ids["a"], "s1@sender.test", "failed")
    assert dsn["recipients"] == ["a@one.test"]

    code, out, _ = await cli(relay, "delete", "--domain", "two.test")
    assert (code, out) == (0, "deleted:\n  messages    1\n  recipients  1\n")
    (deleted,) = relay.events("deleted")
    assert deleted["message_id"] == ids["b"]
    assert ids["b"] not in relay.daemon.spool  # every recipient final: gone
    assert len(relay.events("dsn")) == 1  # a delete sends none

    status, answer = await admin(relay, "/api/v1/rebind", {"domain": "one.test", "target": "x"})
    assert (status, answer["field"]) == (400, "target")
    code, out, _ = await cli(relay, "--json", "rebind", "other", "--binding-group", "g")
    assert code == 0 and json.loads(out) == {"rebound": {"messages": 1, "recipients": 1}}
    assert (await admin(relay, "/api/v1/flush", {}))[0] == 200
    await relay.wait(lambda: len(sink.messages) == 1)
    (arrived,) = sink.messages
    assert arrived.rcpt_tos == ["c@one.test"] and arrived.peer_ip == "127.0.0.3"  # "other"


async def test_suspend_and_resume_a_whole_domain(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(config(smtp_sink.port), dns=dns, admin=True)
    code, _, err = await cli(relay, "suspend-domain", "One.Test", "--duration", "1 hour")
    assert code == 0, err
    now = relay.daemon.clock.now()
    for binding in ("b1", "o1", "default"):
        assert relay.daemon.suspensions.is_suspended(binding, "one.test", now)
    for group in ("g", "other"):
        assert (await inject(relay, {"from": "s@x.test", "to": ["r@one.test"], "text": "x",
                                      "binding_group": group}))[0] == 201  # fmt: skip
    await asyncio.sleep(0.5)
    assert sink.messages == []
    status, answer = await admin(relay, "/api/v1/resume", {"domain": "one.test"})
    assert status == 200 and len(answer["resumed"]) == 3
    await relay.wait(lambda: len(sink.messages) == 2)
    status, answer = await admin(relay, "/api/v1/suspend", {"domain": ""})
    assert (status, answer["field"]) == (400, "domain")


async def cli(relay: RelayUnderTest, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.cli",
        "admin",
        "--url",
        relay.admin_url,
        "--token-file",
        str(relay.token_file),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()
