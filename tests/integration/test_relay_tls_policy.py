"""The whole daemon with MTA-STS and TLS reporting configured: mail injected over SMTP goes
out under the enforced policy, the admin API shows today's TLS counts, the policy cache is
in the spool directory, and the next day's RFC 8460 report goes out by mail through relay
itself (to a sink), driven by a manual clock."""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import gzip
import json
from pathlib import Path
from typing import Any

import trustme

from relay.admin.client import request
from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory
from tests.integration.test_deliver_tls_policy import DOMAIN, POLICY_HOST, PolicyServer, sts_policy
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.unit.deliver.test_tls_report import check_rfc8460

START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


async def test_daemon_enforces_counts_and_mails_the_daily_report(
    relay_factory: RelayFactory,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    sink_tls: Any,
    tls_ca: trustme.CA,
    tls_ca_file: str,
    tmp_path: Path,
) -> None:
    policy = await PolicyServer().start(tls_ca)
    try:
        sink = await smtp_sink("127.0.0.12", tls_context=sink_tls("mx1.example.test"))
        dns = await dns_server(
            {
                DOMAIN: {"MX": ["10 mx1.example.test."]},
                "mx1.example.test": {"A": ["127.0.0.12"]},
                f"mta-sts.{DOMAIN}": {"A": [POLICY_HOST]},
                f"_mta-sts.{DOMAIN}": {"TXT": ['"v=STSv1; id=20231114;"']},
                f"_smtp._tls.{DOMAIN}": {"TXT": ['"v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"']},
                "reports.test": {"MX": ["10 mx1.example.test."]},
            }
        )
        clock = ManualClock(START)
        relay = await relay_factory(
            f"""
remote_smtp_port = {sink.port}
use_mta_sts = true
tls_ca = "{tls_ca_file}"
mta_sts_https_port = {policy.port}
tls_reporting = true
tls_report_organization = "relay.test"
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.13 }}
}}
""",
            dns=dns,
            clock=clock,
            listener='binding_group = "g"',
            admin=True,
        )
        await relay.send("a@sender.test", ["rcpt@example.test"])
        await relay.wait(lambda: len(sink.messages) == 1)
        assert sink.messages[0].tls is True  # the policy enforces TLS; tls is "no"
        store = json.loads((relay.directory / "spool" / "mtasts" / "policies.json").read_text())
        assert [p["domain"] for p in store["policies"]] == [DOMAIN]

        read = functools.partial(request, relay.admin_url, token=relay.tokens["read"])
        answer = await asyncio.to_thread(read, "GET", "/api/v1/tls")
        assert answer == {
            "today": [
                {
                    "day": "2023-11-14",
                    "domain": DOMAIN,
                    "policy_type": "sts",
                    "successes": 1,
                    "failures": {},
                }
            ]
        }

        await clock.advance(86400)  # the day is over: its report goes out
        await relay.wait(lambda: len(sink.messages) == 2)
        mail = sink.messages[1]
        assert mail.rcpt_tos == ["tlsrpt@reports.test"]
        message = email.message_from_bytes(mail.content, policy=email.policy.default)
        assert message.get_content_type() == "multipart/report"
        (part,) = [
            p
            for p in message.iter_attachments()
            if p.get_content_type() == "application/tlsrpt+gzip"
        ]
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        report = json.loads(gzip.decompress(payload))
        check_rfc8460(report)
        assert report["organization-name"] == "relay.test"
        (entry,) = report["policies"]
        assert entry["policy"]["policy-domain"] == DOMAIN
        assert entry["policy"]["mx-host"] == ["*.example.test"]
        assert entry["summary"]["total-successful-session-count"] == 1
    finally:
        await policy.stop()


async def test_enforce_defers_but_tls_required_no_waives_the_policy(
    relay_factory: RelayFactory,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tls_ca: trustme.CA,
    tls_ca_file: str,
) -> None:
    policy = await PolicyServer(text=sts_policy(mx="*.nowhere.test")).start(tls_ca)
    try:
        sink = await smtp_sink("127.0.0.12")  # no STARTTLS, and not an MX the policy names
        dns = await dns_server(
            {
                DOMAIN: {"MX": ["10 mx1.example.test."]},
                "mx1.example.test": {"A": ["127.0.0.12"]},
                f"mta-sts.{DOMAIN}": {"A": [POLICY_HOST]},
                f"_mta-sts.{DOMAIN}": {"TXT": ['"v=STSv1; id=1;"']},
            }
        )
        relay = await relay_factory(
            f"""
remote_smtp_port = {sink.port}
use_mta_sts = true
tls_ca = "{tls_ca_file}"
mta_sts_https_port = {policy.port}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.13 }}
}}
""",
            dns=dns,
            listener='binding_group = "g"',
        )
        await relay.send("a@sender.test", ["kept@example.test"], subject="held")
        await relay.wait(lambda: len(relay.events("transient_failure")) >= 1)
        failure = relay.events("transient_failure")[0]
        assert "MTA-STS" in str(failure)
        assert sink.messages == []
        # RFC 8689 5: TLS-Required: No sends regardless of MTA-STS (and DANE)
        await relay.send("a@sender.test", ["waived@example.test"], headers={"TLS-Required": "No"})
        await relay.wait(lambda: len(sink.messages) == 1)
        assert sink.messages[0].rcpt_tos == ["waived@example.test"]
        assert sink.messages[0].tls is False
    finally:
        await policy.stop()
