"""The suppression list against a running relay: a hard bounce (5.1.1) or an FBL complaint
puts the recipient on it (per tenant when the message had one, else global); injection
over SMTP and HTTP then refuses it (550 5.7.1), or with suppression_action = drop accepts
and drops it with an event; the admin API and `relay admin suppression` list, add and
remove entries; injection workers follow the list; entries survive a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import aiosmtplib

from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.integration.test_admin_control import ZONE, admin
from tests.integration.test_admin_http import call, inject
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

NO_SUCH_USER = "550 5.1.1 <gone@one.test>: no such user here"


def config(port: int, extra: str = "") -> str:
    return f"""
remote_smtp_port = {port}
{extra}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
"""


def bounced(relay: RelayUnderTest, recipient: str) -> list[dict[str, object]]:
    return [e for e in relay.events("bounce") if e["recipient"] == recipient]


def body(to: list[str], **more: Any) -> dict[str, Any]:
    return {"from": "s@sender.test", "to": to, "text": "hi", **more}


async def smtp_refusal(relay: RelayUnderTest, recipients: list[str], **kwargs: Any) -> str:
    """The reply refusing recipients[0] (at RCPT or at the end of DATA), "" if accepted."""
    try:
        await relay.send("s@sender.test", recipients, **kwargs)
    except aiosmtplib.SMTPRecipientsRefused as err:
        refused = err.recipients[0]
        return f"{refused.code} {refused.message}"
    except aiosmtplib.SMTPResponseException as err:
        return f"{err.code} {err.message}"
    return ""


async def test_a_hard_bounce_suppresses_the_recipient_at_the_next_injection(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink(
        "127.0.0.10", script=Script(rcpt={"gone@one.test": [NO_SUCH_USER, NO_SUCH_USER]})
    )
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, listener='binding_group = "g"'
    )
    await relay.send("s@sender.test", ["gone@one.test"])
    await relay.wait(lambda: len(relay.events("suppression_added")) == 1)
    (added,) = relay.events("suppression_added")
    assert (added["recipient"], added["tenant"], added["source"]) == (
        "gone@one.test",
        None,
        "bounce",
    )
    assert "5.1.1" in str(added["reason"])

    # SMTP: refused at RCPT, the address compared without case; others still flow.
    reply = await smtp_refusal(relay, ["Gone@One.test"])
    assert reply.startswith("550 5.7.1 <Gone@One.test> is on the suppression list")
    await relay.send("s@sender.test", ["here@one.test"])
    await relay.wait(lambda: "here@one.test" in sink.recipients)
    # HTTP: 422 naming the recipient, nothing queued.
    status, answer = await inject(relay, body(["here@one.test", "gone@one.test"]))
    assert (status, answer["field"]) == (422, "to[1]")
    assert answer["smtp_reply"].startswith("550 5.7.1 <gone@one.test> is on the suppression")
    assert len(relay.events("reception")) == 2

    # A 5.2.2 (mailbox full) or a 4xx is no reason to suppress.
    sink.script.rcpt["full@one.test"] = ["552 5.2.2 mailbox full"]
    await relay.send("s@sender.test", ["full@one.test"])
    await relay.wait(lambda: len(bounced(relay, "full@one.test")) == 1)
    assert len(relay.events("suppression_added")) == 1

    # The entry is in SQLite in the spool directory and survives a restart.
    db = sqlite3.connect(relay.directory / "spool" / "suppression.sqlite")
    assert db.execute("SELECT tenant, address, source FROM entries").fetchall() == [
        ("", "gone@one.test", "bounce")
    ]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    relay = await relay_factory.restart(relay)
    assert (await smtp_refusal(relay, ["gone@one.test"])).startswith("550 5.7.1")


async def test_tenant_suppression_holds_only_for_that_tenant(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(rcpt={"gone@one.test": [NO_SUCH_USER]}))
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, listener='binding_group = "g"'
    )
    await relay.send("s@sender.test", ["gone@one.test"], headers={"X-Tenant": "t1"})
    await relay.wait(lambda: len(relay.events("suppression_added")) == 1)
    assert relay.events("suppression_added")[0]["tenant"] == "t1"

    # Another tenant, and mail without a tenant, still reach the address.
    status, _ = await inject(relay, body(["gone@one.test"], tenant="t2"))
    assert status == 201
    await relay.send("s@sender.test", ["gone@one.test"])
    await relay.wait(lambda: sink.recipients.count("gone@one.test") == 2)
    # t1's mail: over HTTP refused; over SMTP (X-Tenant is read after DATA) the message
    # is refused when it has no other recipient, else that recipient is dropped.
    status, answer = await inject(relay, body(["gone@one.test"], tenant="t1"))
    assert (status, answer["field"]) == (422, "to[0]")
    reply = await smtp_refusal(relay, ["gone@one.test"], headers={"X-Tenant": "t1"})
    assert reply.startswith("550 5.7.1 <gone@one.test> is on the suppression list")
    await relay.send("s@sender.test", ["gone@one.test", "ok@one.test"], headers={"X-Tenant": "t1"})
    await relay.wait(lambda: "ok@one.test" in sink.recipients)
    assert sink.recipients.count("gone@one.test") == 2
    (dropped,) = relay.events("suppressed")
    assert (dropped["recipient"], dropped["tenant"], dropped["action"]) == (
        "gone@one.test",
        "t1",
        "dropped",
    )


async def test_drop_mode_accepts_and_drops_with_an_event(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(smtp_sink.port, "suppression_action = drop"),
        dns=dns,
        admin=True,
        listener='binding_group = "g"',
    )
    assert (await admin(relay, "/api/v1/suppressions", {"address": "x@one.test"}))[0] == 200
    await relay.send("s@sender.test", ["x@one.test", "y@one.test"])
    await relay.wait(lambda: "y@one.test" in sink.recipients)
    assert "x@one.test" not in sink.recipients
    assert [e["recipient"] for e in relay.events("suppressed")] == ["x@one.test"]
    # Every recipient suppressed: 250, nothing queued.
    assert await smtp_refusal(relay, ["x@one.test"]) == ""
    status, answer = await inject(relay, body(["X@one.test"]))
    assert (status, answer) == (201, {"id": None, "recipients": 0, "suppressed": 1})
    status, answer = await inject(relay, body(["X@one.test", "z@one.test"]))
    assert status == 201 and answer["recipients"] == 1 and answer["suppressed"] == 1
    await relay.wait(lambda: "z@one.test" in sink.recipients)
    assert len(relay.events("suppressed")) == 4
    assert len(relay.events("reception")) == 2
    assert "x@one.test" not in sink.recipients


async def test_api_and_cli_list_add_remove_with_scopes(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    from tests.integration.test_admin_http import cli

    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, listener='binding_group = "g"'
    )
    entry = {"address": "a@one.test", "tenant": "t1", "reason": "asked"}
    for scope in ("read", "inject"):
        status, _, _ = await call(
            relay, "POST", "/api/v1/suppressions", entry, token=relay.tokens[scope]
        )
        assert status == 403
    status, _, _ = await call(relay, "GET", "/api/v1/suppressions")
    assert status == 401
    status, answer = await admin(relay, "/api/v1/suppressions", entry)
    assert (status, answer["added"]) == (200, 1)
    assert answer["entries"][0]["source"] == "operator"
    assert (await admin(relay, "/api/v1/suppressions", entry))[1]["added"] == 0  # already
    status, answer = await admin(
        relay, "/api/v1/suppressions", {"addresses": ["B@one.test", "c@one.test"]}
    )
    assert answer["added"] == 2
    status, listed, _ = await call(relay, "GET", "/api/v1/suppressions", token=relay.tokens["read"])
    assert status == 200 and listed["total"] == 3
    assert [(e["tenant"], e["address"]) for e in listed["entries"]] == [
        (None, "b@one.test"),
        (None, "c@one.test"),
        ("t1", "a@one.test"),
    ]
    status, listed, _ = await call(
        relay, "GET", "/api/v1/suppressions?tenant=t1", token=relay.tokens["read"]
    )
    assert [e["address"] for e in listed["entries"]] == ["a@one.test"]
    for bad, field in (({"address": "nope"}, "address"), ({"address": "a@b", "x": 1}, "x")):
        status, answer = await admin(relay, "/api/v1/suppressions", bad)
        assert (status, answer["field"]) == (400, field)

    # Global entries are refused for every tenant; t1's only for t1.
    assert (await inject(relay, body(["b@one.test"], tenant="t9")))[0] == 422
    assert (await inject(relay, body(["a@one.test"], tenant="t9")))[0] == 201
    assert (await inject(relay, body(["a@one.test"], tenant="t1")))[0] == 422

    status, answer = await admin(relay, "/api/v1/suppressions/remove", {"address": "b@one.test"})
    assert (status, answer) == (200, {"removed": 1})
    assert (await inject(relay, body(["b@one.test"])))[0] == 201
    status, answer = await admin(relay, "/api/v1/suppressions/remove", {"address": "a@one.test"})
    assert answer == {"removed": 0}  # that one is t1's

    code, out, _ = await cli(relay, "suppression", "add", "d@one.test", "--tenant", "t2")
    assert code == 0 and "added" in out
    code, out, _ = await cli(relay, "suppression", "list", "--tenant", "t2")
    assert code == 0 and "d@one.test" in out and "t2" in out
    code, out, _ = await cli(relay, "suppression", "remove", "d@one.test", "--tenant", "t2")
    assert (code, out.split()) == (0, ["removed", "1"])
    assert [e["event"] for e in relay.events() if e["event"].startswith("suppression_")] == [
        "suppression_added",
        "suppression_added",
        "suppression_added",
        "suppression_removed",
        "suppression_added",
        "suppression_removed",
    ]


async def test_an_fbl_complaint_suppresses_the_recipient_for_its_tenant(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(
            smtp_sink.port,
            'fbl_address = "fbl@relay.test"\nenable_fbl_header_insertion = enabled',
        ),
        dns=dns,
        admin=True,
        listener='binding_group = "g"',
    )
    await relay.send("s@sender.test", ["angry@one.test"], headers={"X-Tenant": "shop co"})
    await relay.wait(lambda: len(sink.messages) == 1)
    headers = sink.messages[0].content.split(b"\r\n\r\n")[0] + b"\r\n"
    assert headers.startswith(b"X-Relay-FBL: b=b1; d=one.test; i=")
    assert b"r=angry@one.test; t=shop%20co" in headers
    report = (
        b"Subject: FBL\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        b"\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n" + headers + b"\r\n--B--\r\n"
    )
    await aiosmtplib.send(
        report,
        sender="fbl@isp.test",
        recipients=["fbl@relay.test"],
        port=relay.port,
        hostname="127.0.0.1",
    )
    await relay.wait(lambda: len(relay.events("suppression_added")) == 1)
    (added,) = relay.events("suppression_added")
    assert (added["recipient"], added["tenant"], added["source"]) == (
        "angry@one.test",
        "shop co",
        "complaint",
    )
    status, answer = await inject(relay, body(["angry@one.test"], tenant="shop co"))
    assert (status, answer["field"]) == (422, "to[0]")
    assert (await inject(relay, body(["angry@one.test"])))[0] == 201


async def test_injection_workers_follow_the_list(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(rcpt={"gone@one.test": [NO_SUCH_USER]}))
    relay = await relay_factory(
        config(smtp_sink.port, "injection_workers = 2"),
        dns=dns,
        admin=True,
        listener='binding_group = "g"',
    )

    async def refused_everywhere(address: str) -> bool:
        # Several connections: the kernel spreads them over both workers.
        replies = [await smtp_refusal(relay, [address]) for _ in range(6)]
        return all(r.startswith("550 5.7.1") for r in replies)

    async def wait_for(address: str, refused: bool) -> None:
        for _ in range(40):
            if await refused_everywhere(address) == refused:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{address} not {'refused' if refused else 'accepted'} in time")

    # A bounce learnt by the scheduler process reaches the workers' listeners.
    await relay.send("s@sender.test", ["gone@one.test"])
    await relay.wait(lambda: len(relay.events("suppression_added")) == 1, within=20)
    await wait_for("gone@one.test", refused=True)
    # So do an operator's add and remove.
    await admin(relay, "/api/v1/suppressions", {"address": "op@one.test"})
    await wait_for("op@one.test", refused=True)
    await admin(relay, "/api/v1/suppressions/remove", {"address": "op@one.test"})
    await wait_for("op@one.test", refused=False)
    await relay.wait(lambda: sink.recipients.count("op@one.test") >= 1, within=20)


async def test_suppression_can_be_turned_off(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink(
        "127.0.0.10", script=Script(rcpt={"gone@one.test": [NO_SUCH_USER, NO_SUCH_USER]})
    )
    relay = await relay_factory(
        config(smtp_sink.port, "suppression_enabled = false"),
        dns=dns,
        admin=True,
        listener='binding_group = "g"',
    )
    await relay.send("s@sender.test", ["gone@one.test"])
    await relay.wait(lambda: len(bounced(relay, "gone@one.test")) == 1)
    await relay.send("s@sender.test", ["gone@one.test"])  # accepted again
    await relay.wait(lambda: len(bounced(relay, "gone@one.test")) == 2)
    assert not relay.events("suppression_added") and not sink.messages
    assert not (relay.directory / "spool" / "suppression.sqlite").exists()
    status, answer = await admin(relay, "/api/v1/suppressions", {"address": "a@one.test"})
    assert status == 409 and "suppression_enabled = false" in answer["error"]


async def test_workers_drop_with_an_event_and_their_mail_can_be_looked_up_and_rebound(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(
            smtp_sink.port,
            "injection_workers = 2\nsuppression_action = drop\n"
            'domain "one.test" { suspend_delivery = true }\n'
            'binding_group "other" { binding "o1" { bind_address = 127.0.0.3 } }',
        ),
        dns=dns,
        admin=True,
        listener='binding_group = "g"',
    )
    await admin(relay, "/api/v1/suppressions", {"address": "x@one.test", "tenant": "t"})
    await admin(relay, "/api/v1/suppressions", {"address": "probe@one.test"})
    for _ in range(50):  # until both workers have looked at the file (every 0.25 s)
        answers = [
            (
                await aiosmtplib.send(
                    b"Subject: p\r\n\r\np\r\n",
                    sender="s@sender.test",
                    recipients=["probe@one.test"],
                    hostname="127.0.0.1",
                    port=relay.port,
                )
            )[1]
            for _ in range(6)
        ]
        if all("suppression list" in a for a in answers):
            break
        await asyncio.sleep(0.1)
    dropped_before = len(relay.events("suppressed"))
    await relay.send("s@sender.test", ["x@one.test", "y@one.test"], headers={"X-Tenant": "t"})
    await relay.wait(lambda: len(relay.events("suppressed")) == dropped_before + 1)
    dropped = relay.events("suppressed")[-1]
    assert (dropped["recipient"], dropped["tenant"]) == ("x@one.test", "t")

    def receptions() -> list[dict[str, object]]:
        return [e for e in relay.events("reception") if e.get("tenant") == "t"]

    await relay.wait(lambda: len(receptions()) == 1)
    (reception,) = receptions()
    status, found, _ = await call(
        relay, "GET", f"/api/v1/messages/{reception['message_id']}", token=relay.tokens["read"]
    )
    assert status == 200 and [r["recipient"] for r in found["recipients"]] == ["y@one.test"]
    assert found["tenant"] == "t"
    status, moved = await admin(relay, "/api/v1/rebind", {"tenant": "t", "target": "other"})
    assert moved == {"rebound": {"messages": 1, "recipients": 1}}
    relay = await relay_factory.restart(relay)
    shards = relay.daemon.shards
    assert shards is not None
    await relay.wait(lambda: reception["message_id"] in shards.owners)  # recovered
    status, found, _ = await call(
        relay, "GET", f"/api/v1/messages/{reception['message_id']}", token=relay.tokens["read"]
    )
    assert status == 200 and found["binding_group"] == "other"
