"""MTA-STS, DANE and TLS reporting against real servers on loopback: the test DNS server
(TXT, TLSA, MX with and without AD), an HTTPS policy host with a trustme certificate, and
SMTP sinks with and without STARTTLS and with right and wrong certificates. Delivery goes
through the scheduler's SmtpTransport with relay's OutboundTls, as in the daemon."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from relay.clock import ManualClock
from relay.deliver import DeliverySettings, Outcome, Router
from relay.deliver.mta_sts import Mode
from relay.deliver.sts_fetch import PolicyStore, StsPolicies
from relay.deliver.tls_policy import OutboundTls
from relay.deliver.tls_report import Session, TlsCounts
from relay.deliver.tls_report_send import TlsReports
from relay.esmtp import Esmtp
from relay.schedule.smtp_transport import SmtpTransport
from relay.schedule.transport import ConnectFailed
from tests.support.dns_server import SERVFAIL, DnsServer
from tests.support.esmtp_sink import EsmtpSink
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.http_sink import HttpSink
from tests.support.messages import make_message
from tests.support.sinks import server_tls_context
from tests.unit.deliver.test_tls_report import check_rfc8460

DOMAIN = "example.test"
POLICY_HOST = "127.0.0.9"
FAST = {
    "connect_timeout": 2.0,
    "ehlo_timeout": 2.0,
    "mailfrom_timeout": 2.0,
    "rcptto_timeout": 2.0,
    "body_timeout": 2.0,
    "rset_timeout": 2.0,
}


def sts_policy(mode: str = "enforce", mx: str = "*.example.test", max_age: int = 86400) -> str:
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {max_age}\r\n"


@dataclass
class PolicyServer:
    """https://mta-sts.example.test:<port>/.well-known/mta-sts.txt on 127.0.0.9."""

    text: str = field(default_factory=sts_policy)
    status: int = 200
    content_type: str = "text/plain"
    location: str | None = None  # answer a redirect to here
    hits: int = 0
    port: int = 0
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.location is not None:
            raise web.HTTPFound(self.location)
        return web.Response(status=self.status, text=self.text, content_type=self.content_type)

    async def start(self, ca: trustme.CA) -> PolicyServer:
        app = web.Application()
        app.router.add_get("/.well-known/mta-sts.txt", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        context = server_tls_context(ca.issue_cert(f"mta-sts.{DOMAIN}"))
        await web.TCPSite(self.runner, POLICY_HOST, 0, ssl_context=context).start()
        self.port = int(self.runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest_asyncio.fixture
async def policy_server(tls_ca: trustme.CA) -> AsyncIterator[PolicyServer]:
    server = await PolicyServer().start(tls_ca)
    yield server
    await server.stop()


def zone(*, sts_id: str | None = "1", mx: str = "mx1.example.test", ad: bool = False) -> Any:
    names: dict[str, Any] = {
        DOMAIN: {"MX": [f"10 {mx}."], "ad": ad},
        mx: {"A": ["127.0.0.2"], "ad": ad},
        f"mta-sts.{DOMAIN}": {"A": [POLICY_HOST]},
    }
    if sts_id is not None:
        names[f"_mta-sts.{DOMAIN}"] = {"TXT": [f'"v=STSv1; id={sts_id};"']}
    return names


@dataclass
class Setup:
    dns: DnsServer
    transport: SmtpTransport
    sts: StsPolicies
    counts: TlsCounts
    clock: ManualClock
    settings: DeliverySettings


async def setup(
    dns_server: DnsServerFactory,
    names: Any,
    port: int,
    https_port: int,
    tmp_path: Path,
    **fields: Any,
) -> Setup:
    dns = await dns_server(names)
    resolver = dns.resolver()
    clock = ManualClock()
    sts = StsPolicies(
        resolver, PolicyStore(tmp_path / "policies.json"), clock.now, https_port=https_port
    )
    counts = TlsCounts()
    transport = SmtpTransport(Router(resolver), None, OutboundTls(resolver, sts, counts, clock.now))
    values: dict[str, Any] = {"remote_smtp_port": port, "ehlo_hostname": "relay.test", **FAST}
    values.update(fields)
    return Setup(dns, transport, sts, counts, clock, DeliverySettings(**values))


async def deliver(s: Setup) -> list[Any]:
    session = await s.transport.open("default", DOMAIN, s.settings)
    try:
        return await session.send(make_message("rcpt@example.test"))
    finally:
        await session.close()


def today(s: Setup) -> dict[str, Any]:
    return {b.policy_type: (b.successes, b.by_result()) for b in s.counts.day(s.clock.now())}


# ---- MTA-STS ---------------------------------------------------------------------------


async def test_enforce_with_a_matching_mx_and_a_valid_certificate_delivers_over_tls(
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    sink_tls: Any,
    tls_ca_file: str,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    sink = await smtp_sink("127.0.0.2", tls_context=sink_tls("mx1.example.test"))
    s = await setup(
        dns_server,
        zone(),
        sink.port,
        policy_server.port,
        tmp_path,
        use_mta_sts=True,
        tls="no",
        tls_ca=tls_ca_file,
    )
    results = await deliver(s)
    assert [r.outcome for r in results] == [Outcome.DELIVERED]
    assert sink.messages[0].tls is True  # tls = no, but the policy enforces TLS
    assert today(s) == {"sts": (1, {})}
    cached = s.sts.cached(DOMAIN)
    assert cached is not None and cached.policy.mode is Mode.ENFORCE
    # kept in the store: another StsPolicies (a restart) does not fetch again
    again = StsPolicies(
        s.dns.resolver(),
        PolicyStore(tmp_path / "policies.json"),
        s.clock.now,
        https_port=policy_server.port,
    )
    assert (await again.lookup(DOMAIN, tls_ca_file)).policy == cached.policy
    assert policy_server.hits == 1


async def test_enforce_with_no_matching_mx_defers(
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    sink_tls: Any,
    tls_ca_file: str,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    sink = await smtp_sink("127.0.0.2", tls_context=sink_tls("mx1.other.test"))
    s = await setup(
        dns_server,
        zone(mx="mx1.other.test"),
        sink.port,
        policy_server.port,
        tmp_path,
        use_mta_sts=True,
        tls_ca=tls_ca_file,
    )
    with pytest.raises(ConnectFailed) as failed:
        await deliver(s)
    assert not failed.value.permanent  # deferred, never bounced at once
    assert failed.value.reply.code == 451 and "MTA-STS" in failed.value.reply.text
    assert sink.messages == []
    assert today(s) == {"sts": (0, {"validation-failure": 1})}


@pytest.mark.parametrize("problem", ["no-starttls", "wrong-name", "domain-name", "untrusted"])
async def test_enforce_without_verified_tls_defers_and_never_sends_in_clear(
    problem: str,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    sink_tls: Any,
    tls_ca_file: str,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    context = {
        "no-starttls": None,
        "wrong-name": sink_tls("mx9.example.test"),
        "domain-name": sink_tls(DOMAIN),  # RFC 8461 4.2: the MX name, not the domain's
        "untrusted": server_tls_context(trustme.CA().issue_cert("mx1.example.test")),
    }[problem]
    sink = await smtp_sink("127.0.0.2", tls_context=context)
    s = await setup(
        dns_server,
        zone(),
        sink.port,
        policy_server.port,
        tmp_path,
        use_mta_sts=True,
        tls="ifavailable",
        tls_ca=tls_ca_file,
    )
    with pytest.raises(ConnectFailed) as failed:
        await deliver(s)
    assert failed.value.tls and not failed.value.permanent
    assert sink.messages == []
    expected = {
        "no-starttls": "starttls-not-supported",
        "wrong-name": "certificate-host-mismatch",
        "domain-name": "certificate-host-mismatch",
        "untrusted": "certificate-not-trusted",
    }[problem]
    assert today(s) == {"sts": (0, {expected: 1})}


async def test_testing_mode_delivers_and_counts_what_would_have_failed(
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tls_ca_file: str,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    policy_server.text = sts_policy("testing", mx="*.other.test")
    sink = await smtp_sink("127.0.0.2")  # no STARTTLS, and the MX does not match
    s = await setup(
        dns_server,
        zone(),
        sink.port,
        policy_server.port,
        tmp_path,
        use_mta_sts=True,
        tls_ca=tls_ca_file,
    )
    results = await deliver(s)
    assert [r.outcome for r in results] == [Outcome.DELIVERED]
    assert sink.messages[0].tls is False
    assert today(s) == {"sts": (0, {"validation-failure": 1})}


async def test_enable_mta_sts_false_looks_up_but_does_not_apply(
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tls_ca_file: str,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    sink = await smtp_sink("127.0.0.2")
    s = await setup(
        dns_server,
        zone(mx="mx1.other.test"),
        sink.port,
        policy_server.port,
        tmp_path,
        use_mta_sts=True,
        enable_mta_sts=False,
        tls_ca=tls_ca_file,
    )
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]
    assert policy_server.hits == 1


@pytest.mark.parametrize("trouble", ["redirect", "404", "html", "invalid", "untrusted"])
async def test_fetch_failure_without_a_cached_policy_delivers_as_without_mta_sts(
    trouble: str,
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tls_ca_file: str,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    if trouble == "redirect":
        policy_server.location = f"https://mta-sts.{DOMAIN}:{policy_server.port}/elsewhere"
    elif trouble == "404":
        policy_server.status = 404
    elif trouble == "html":
        policy_server.content_type = "text/html"
    elif trouble == "invalid":
        policy_server.text = "version: STSv1\r\nmode: enforce\r\n"
    sink = await smtp_sink("127.0.0.2")
    ca = trustme.CA() if trouble == "untrusted" else None
    ca_file = tls_ca_file
    if ca is not None:
        ca_file = str(tmp_path / "other-ca.pem")
        ca.cert_pem.write_to_path(ca_file)
    s = await setup(
        dns_server,
        zone(mx="mx1.other.test"),
        sink.port,
        policy_server.port,
        tmp_path,
        use_mta_sts=True,
        tls_ca=ca_file,
    )
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]
    assert sink.messages[0].tls is False
    assert policy_server.hits == (0 if trouble == "untrusted" else 1)  # a redirect not followed
    expected = {
        "redirect": "sts-policy-fetch-error",
        "404": "sts-policy-fetch-error",
        "html": "sts-policy-invalid",
        "invalid": "sts-policy-invalid",
        "untrusted": "sts-webpki-invalid",
    }[trouble]
    assert today(s) == {"sts": (0, {expected: 1}), "no-policy-found": (1, {})}


async def test_fetch_failure_keeps_the_cached_policy_and_a_new_id_refreshes(
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    sink_tls: Any,
    tls_ca_file: str,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    sink = await smtp_sink("127.0.0.2", tls_context=sink_tls("mx1.example.test"))
    s = await setup(
        dns_server,
        zone(),
        sink.port,
        policy_server.port,
        tmp_path,
        use_mta_sts=True,
        tls_ca=tls_ca_file,
    )
    await deliver(s)
    assert policy_server.hits == 1
    await deliver(s)
    assert policy_server.hits == 1  # cached: same id, not due
    # a new id: fetched again, and the fetch fails (404): the cached policy stays in force
    s.dns.zone[f"_mta-sts.{DOMAIN}"] = {"TXT": ['"v=STSv1; id=2;"']}
    s.dns.zone[DOMAIN] = {"MX": ["10 mx1.elsewhere.test."]}
    s.dns.zone["mx1.elsewhere.test"] = {"A": ["127.0.0.2"]}
    s.transport.router.resolver.clear_cache()
    policy_server.status = 404
    with pytest.raises(ConnectFailed):  # enforce still: mx1.elsewhere.test does not match
        await deliver(s)
    assert policy_server.hits == 2
    # the policy host fixed, and a little later: the new policy (testing) replaces it
    policy_server.status = 200
    policy_server.text = sts_policy("testing", mx="*.elsewhere.test")
    await s.clock.advance(600)
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]
    cached = s.sts.cached(DOMAIN)
    assert cached is not None and cached.record_id == "2" and cached.policy.mode is Mode.TESTING


# ---- DANE ------------------------------------------------------------------------------


def tlsa_for(leaf: trustme.LeafCert, usage: int = 3) -> str:
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[-1 if usage == 2 else 0].bytes())
    spki = der.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return f"{usage} 1 1 {hashlib.sha256(spki).hexdigest()}"


def dane_zone(port: int, tlsa: str, *, ad: bool = True) -> Any:
    names = zone(sts_id=None, ad=True)
    names[f"_{port}._tcp.mx1.example.test"] = {"TLSA": [tlsa], "ad": ad}
    return names


async def test_dane_ee_match_delivers_over_tls(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, tls_ca: trustme.CA, tmp_path: Path
) -> None:
    leaf = trustme.CA().issue_cert("mx1.example.test")  # no CA relay trusts: DANE-EE only
    sink = await smtp_sink("127.0.0.2", tls_context=server_tls_context(leaf))
    s = await setup(
        dns_server,
        dane_zone(sink.port, tlsa_for(leaf)),
        sink.port,
        1,
        tmp_path,
        use_dane=True,
        tls="no",
    )
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]
    assert sink.messages[0].tls is True
    assert today(s) == {"tlsa": (1, {})}


async def test_dane_ta_match_delivers(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    leaf = trustme.CA().create_child_ca().issue_cert("mx1.example.test")
    sink = await smtp_sink("127.0.0.2", tls_context=server_tls_context(leaf))
    s = await setup(
        dns_server,
        dane_zone(sink.port, tlsa_for(leaf, usage=2)),
        sink.port,
        1,
        tmp_path,
        use_dane=True,
    )
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]
    assert sink.messages[0].tls is True


async def test_dane_mismatch_defers_with_no_plain_text_fallback(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    leaf = trustme.CA().issue_cert("mx1.example.test")
    other = trustme.CA().issue_cert("mx1.example.test")
    sink = await smtp_sink("127.0.0.2", tls_context=server_tls_context(leaf))
    s = await setup(
        dns_server,
        dane_zone(sink.port, tlsa_for(other)),
        sink.port,
        1,
        tmp_path,
        use_dane=True,
        tls="ifavailable",
        tls_ifavailable_fallback=True,
    )
    with pytest.raises(ConnectFailed) as failed:
        await deliver(s)
    assert failed.value.tls and not failed.value.permanent
    assert "TLSA" in failed.value.reply.text
    assert sink.messages == []  # no retry in plain text
    assert today(s) == {"tlsa": (0, {"validation-failure": 1})}


async def test_dane_requires_starttls(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    leaf = trustme.CA().issue_cert("mx1.example.test")
    sink = await smtp_sink("127.0.0.2")  # offers no STARTTLS
    s = await setup(
        dns_server, dane_zone(sink.port, tlsa_for(leaf)), sink.port, 1, tmp_path, use_dane=True
    )
    with pytest.raises(ConnectFailed):
        await deliver(s)
    assert sink.messages == []
    assert today(s) == {"tlsa": (0, {"starttls-not-supported": 1})}


@pytest.mark.parametrize("unsigned", ["tlsa", "mx"])
async def test_answers_without_ad_leave_tlsa_ignored(
    unsigned: str, dns_server: DnsServerFactory, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    leaf = trustme.CA().issue_cert("mx1.example.test")
    other = trustme.CA().issue_cert("mx1.example.test")
    sink = await smtp_sink("127.0.0.2", tls_context=server_tls_context(leaf))
    names = dane_zone(sink.port, tlsa_for(other), ad=unsigned != "tlsa")
    if unsigned == "mx":
        names[DOMAIN]["ad"] = False
    s = await setup(dns_server, names, sink.port, 1, tmp_path, use_dane=True, tls="ifavailable")
    # the (mismatching) TLSA record is not trusted: opportunistic TLS, delivered
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]
    assert sink.messages[0].tls is True


async def test_enable_dane_false_ignores_tlsa(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    leaf = trustme.CA().issue_cert("mx1.example.test")
    sink = await smtp_sink("127.0.0.2")
    s = await setup(
        dns_server,
        dane_zone(sink.port, tlsa_for(leaf)),
        sink.port,
        1,
        tmp_path,
        use_dane=True,
        enable_dane=False,
    )
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]


async def test_dane_decides_verification_and_mta_sts_the_mx(
    dns_server: DnsServerFactory,
    smtp_sink: SinkFactory,
    tls_ca_file: str,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    # enforce would need a certificate from tls_ca naming the MX: DANE-EE matches instead
    leaf = trustme.CA().issue_cert("unrelated.test")
    sink = await smtp_sink("127.0.0.2", tls_context=server_tls_context(leaf))
    names = dane_zone(sink.port, tlsa_for(leaf))
    names[f"_mta-sts.{DOMAIN}"] = {"TXT": ['"v=STSv1; id=1;"']}
    s = await setup(
        dns_server,
        names,
        sink.port,
        policy_server.port,
        tmp_path,
        use_dane=True,
        use_mta_sts=True,
        tls_ca=tls_ca_file,
    )
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]
    assert sink.messages[0].tls is True
    assert today(s) == {"tlsa": (1, {})}


# ---- TLS reports ----------------------------------------------------------------------


async def test_daily_report_is_posted_and_mailed_as_rfc8460_json(
    dns_server: DnsServerFactory, tls_ca: trustme.CA, tls_ca_file: str, tmp_path: Path
) -> None:
    endpoint = await HttpSink(
        "127.0.0.11", tls_context=server_tls_context(tls_ca.issue_cert("tlsrpt.example.test"))
    ).start()
    try:
        dns = await dns_server(
            {
                "tlsrpt.example.test": {"A": ["127.0.0.11"]},
                f"_smtp._tls.{DOMAIN}": {
                    "TXT": [
                        f'"v=TLSRPTv1; rua=https://tlsrpt.example.test:{endpoint.port}/v1,'
                        'mailto:tlsrpt@example.test"'
                    ]
                },
            }
        )
        clock = ManualClock(1_700_000_000.0)  # 2023-11-14
        mails: list[tuple[str, tuple[str, ...], bytes]] = []

        async def send_mail(sender: str, recipients: tuple[str, ...], content: bytes) -> None:
            mails.append((sender, recipients, content))

        state = tmp_path / "tls-report-counts.json"
        reports = TlsReports(
            state,
            dns.resolver(),
            clock.now,
            organization="relay.test",
            contact="postmaster@relay.test",
            send_mail=send_mail,
            ca_file=tls_ca_file,
        )
        reports.counts.record(
            Session(DOMAIN, "sts", ("version: STSv1",), ("*.example.test",)), clock.now()
        )
        reports.counts.record(
            Session(
                DOMAIN, "sts", result="starttls-not-supported", receiving_mx="mx1.example.test"
            ),
            clock.now(),
        )
        assert await reports.send_due() == []  # the day is not over
        reports.save()
        # a restart keeps the counts
        reports = TlsReports(
            state,
            dns.resolver(),
            clock.now,
            organization="relay.test",
            contact="postmaster@relay.test",
            send_mail=send_mail,
            ca_file=tls_ca_file,
        )
        assert reports.counts.day(clock.now())[0].successes == 1
        await clock.advance(86400)
        sent = await reports.send_due()
        assert [(r.uri.split(":")[0], r.ok) for r in sent] == [("https", True), ("mailto", True)]
        assert reports.counts.buckets() == []  # reported: forgotten
        posted = endpoint.requests[0]
        assert posted.method == "POST" and posted.path == "/v1"
        assert posted.headers["Content-Type"] == "application/tlsrpt+gzip"
        report = json.loads(gzip.decompress(posted.body))
        check_rfc8460(report)
        assert report["policies"][0]["summary"] == {
            "total-successful-session-count": 1,
            "total-failure-session-count": 1,
        }
        assert report["date-range"]["start-datetime"] == "2023-11-14T00:00:00Z"
        assert mails[0][1] == ("tlsrpt@example.test",)
        assert b"application/tlsrpt+gzip" in mails[0][2]
        assert json.loads(state.read_text())["buckets"] == []
    finally:
        await endpoint.stop()


async def test_requiretls_goes_over_a_dane_verified_session(
    dns_server: DnsServerFactory, tmp_path: Path
) -> None:
    leaf = trustme.CA().issue_cert("mx1.example.test")
    async with EsmtpSink(
        "127.0.0.2", extensions=["PIPELINING", "REQUIRETLS"], tls_context=server_tls_context(leaf)
    ) as sink:
        s = await setup(
            dns_server,
            dane_zone(sink.port, tlsa_for(leaf)),
            sink.port,
            1,
            tmp_path,
            use_dane=True,
        )  # tls_verify = no: DANE is the verification REQUIRETLS needs (RFC 8689 2)
        session = await s.transport.open("default", DOMAIN, s.settings)
        try:
            message = make_message("rcpt@example.test", esmtp=Esmtp(requiretls=True))
            results = await session.send(message)
        finally:
            await session.close()
        assert [r.outcome for r in results] == [Outcome.DELIVERED]
        assert sink.messages[0].tls and "REQUIRETLS" in sink.messages[0].mail


async def test_dane_tlsa_lookup_failure_of_a_signed_host_defers(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    sink = await smtp_sink("127.0.0.2")
    names = dane_zone(sink.port, "3 1 1 00")
    names[f"_{sink.port}._tcp.mx1.example.test"] = {"TLSA": SERVFAIL, "ad": True}
    s = await setup(dns_server, names, sink.port, 1, tmp_path, use_dane=True)
    with pytest.raises(ConnectFailed) as failed:
        await deliver(s)
    assert "TLSA" in failed.value.reply.text and not failed.value.permanent
    assert sink.messages == []
    assert today(s) == {"tlsa": (0, {"dnssec-invalid": 1})}


async def test_only_unusable_tlsa_records_mean_opportunistic_tls(
    dns_server: DnsServerFactory, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    leaf = trustme.CA().issue_cert("mx1.example.test")
    sink = await smtp_sink("127.0.0.2", tls_context=server_tls_context(leaf))
    pkix_ee = tlsa_for(leaf).replace("3 ", "1 ", 1)  # PKIX-EE: unusable for SMTP
    s = await setup(
        dns_server,
        dane_zone(sink.port, pkix_ee),
        sink.port,
        1,
        tmp_path,
        use_dane=True,
        tls="ifavailable",
    )
    assert [r.outcome for r in await deliver(s)] == [Outcome.DELIVERED]
    assert sink.messages[0].tls is True
    assert today(s) == {"tlsa": (0, {"tlsa-invalid": 1}), "no-policy-found": (1, {})}
