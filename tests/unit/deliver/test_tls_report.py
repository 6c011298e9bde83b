"""TLS reporting pure core (RFC 8460) and the TLS policy decisions of tls_policy."""

from __future__ import annotations

import datetime
import email
import email.policy
import gzip
import json
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from relay.deliver.mta_sts import Mode, Policy
from relay.deliver.route import Destination, MxHost, Route
from relay.deliver.settings import DeliverySettings
from relay.deliver.tls_policy import (
    classify_tls_failure,
    enforce_verdict,
    policy_lines,
    sts_hosts,
    sts_settings,
)
from relay.deliver.tls_report import (
    Session,
    TlsCounts,
    build_report,
    day_of,
    gzip_report,
    parse_tlsrpt_record,
    report_mail,
)

DAY1 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DAY2 = DAY1 + 86400
POLICY = Policy(Mode.ENFORCE, ("*.example.com",), 86400)


def check_rfc8460(report: dict[str, Any]) -> None:
    """The report's shape per RFC 8460 4.4 (required fields and their types)."""
    assert isinstance(report["organization-name"], str)
    assert isinstance(report["contact-info"], str)
    assert isinstance(report["report-id"], str)
    for key in ("start-datetime", "end-datetime"):
        datetime.datetime.strptime(report["date-range"][key], "%Y-%m-%dT%H:%M:%SZ")
    assert report["policies"]
    for item in report["policies"]:
        assert item["policy"]["policy-type"] in ("sts", "tlsa", "no-policy-found")
        assert isinstance(item["policy"]["policy-domain"], str)
        summary = item["summary"]
        assert isinstance(summary["total-successful-session-count"], int)
        failed = sum(d["failed-session-count"] for d in item.get("failure-details", []))
        assert summary["total-failure-session-count"] == failed
        for detail in item.get("failure-details", []):
            assert isinstance(detail["result-type"], str)


def test_counts_per_day_domain_and_type() -> None:
    counts = TlsCounts()
    sts = Session("Example.com", "sts", policy_lines(POLICY), POLICY.mx)
    counts.record(sts, DAY1)
    counts.record(sts, DAY1)
    fail = Session(
        "example.com",
        "sts",
        (),
        (),
        "starttls-not-supported",
        "mx.example.com",
        "127.0.0.2",
        "127.0.0.3",
    )
    counts.record(fail, DAY1)
    counts.record(Session("example.com", "sts"), DAY2)
    with pytest.raises(ValueError, match="result type"):
        counts.record(Session("example.com", "sts", result="bogus"), DAY1)
    today = counts.day(DAY1)
    assert len(today) == 1
    assert today[0].successes == 2
    assert today[0].by_result() == {"starttls-not-supported": 1}
    assert today[0].policy_string == policy_lines(POLICY)  # kept from the first session
    assert [b.day for b in counts.before(DAY2)] == [day_of(DAY1)]
    again = TlsCounts.from_json(json.loads(json.dumps(counts.to_json())))
    assert [vars_of(b) for b in again.buckets()] == [vars_of(b) for b in counts.buckets()]
    counts.drop(day_of(DAY1), "example.com")
    assert [b.day for b in counts.buckets()] == [day_of(DAY2)]


def vars_of(bucket: Any) -> dict[str, Any]:
    return bucket.to_json()  # type: ignore[no-any-return]


def test_report_is_rfc8460_json() -> None:
    counts = TlsCounts()
    counts.record(Session("example.com", "sts", policy_lines(POLICY), POLICY.mx), DAY1)
    for _ in range(3):
        counts.record(
            Session(
                "example.com", "sts", result="validation-failure", receiving_mx="mx.other.test"
            ),
            DAY1,
        )
    counts.record(Session("example.com", "tlsa", result="dnssec-invalid"), DAY1)
    report = build_report(counts.day(DAY1), "relay.test", "postmaster@relay.test", "r1")
    check_rfc8460(report)
    assert report["date-range"] == {
        "start-datetime": "2023-11-14T00:00:00Z",
        "end-datetime": "2023-11-14T23:59:59Z",
    }
    sts = next(p for p in report["policies"] if p["policy"]["policy-type"] == "sts")
    assert sts["policy"]["mx-host"] == ["*.example.com"]
    assert sts["policy"]["policy-string"][1] == "mode: enforce"
    assert sts["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 3}
    assert sts["failure-details"] == [
        {
            "result-type": "validation-failure",
            "receiving-mx-hostname": "mx.other.test",
            "failed-session-count": 3,
        }
    ]
    assert json.loads(gzip.decompress(gzip_report(report))) == report
    with pytest.raises(ValueError):
        build_report([], "o", "c", "r")


def test_report_mail_rfc8460_5_3() -> None:
    counts = TlsCounts()
    counts.record(Session("example.com", "sts"), DAY1)
    report = build_report(counts.day(DAY1), "relay.test", "postmaster@relay.test", "r1")
    raw = report_mail(report, "postmaster@relay.test", "tls@example.com", "example.com", DAY2)
    assert b"\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    assert message["TLS-Report-Domain"] == "example.com"
    assert message["TLS-Report-Submitter"] == "relay.test"
    assert message["Subject"] == "Report Domain: example.com Submitter: relay.test Report-ID: <r1>"
    parts = [
        p for p in message.iter_attachments() if p.get_content_type() == "application/tlsrpt+gzip"
    ]
    assert len(parts) == 1
    assert parts[0].get_filename() == "relay.test!example.com!1699920000!1700006399.json.gz"
    body = parts[0].get_payload(decode=True)
    assert isinstance(body, bytes)
    check_rfc8460(json.loads(gzip.decompress(body)))


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["v=TLSRPTv1; rua=mailto:tls@example.com"], ("mailto:tls@example.com",)),
        (
            ["v=TLSRPTv1;rua=mailto:a@x.test,https://r.x.test/v1"],
            ("mailto:a@x.test", "https://r.x.test/v1"),
        ),
        (["v=TLSRPTv1; rua=http://plain.test/"], None),
        (["v=TLSRPTv1;"], None),
        (["v=TLSRPTv1; rua=mailto:a@b", "v=TLSRPTv1; rua=mailto:c@d"], None),
        (["v=spf1 -all"], None),
    ],
)
def test_tlsrpt_record(texts: list[str], expected: tuple[str, ...] | None) -> None:
    assert parse_tlsrpt_record(texts) == expected


# ---- tls_policy decisions ----------------------------------------------------------------


def test_sts_settings_take_the_stricter() -> None:
    base = DeliverySettings(tls="no", tls_verify="no")
    enforce = sts_settings(base, POLICY)
    assert (enforce.tls, enforce.tls_verify, enforce.tls_ifavailable_fallback) == (
        "required",
        "host",
        False,
    )
    testing = sts_settings(base, Policy(Mode.TESTING, ("x.test",), 1))
    assert (testing.tls, testing.tls_verify) == ("ifavailable", "no")
    required = DeliverySettings(tls="required", tls_verify="host")
    assert sts_settings(required, Policy(Mode.TESTING, ("x.test",), 1)) is required
    assert sts_settings(base, Policy(Mode.NONE, (), 1)) is base
    assert sts_settings(base, None) is base


def test_sts_hosts_keeps_only_matching_mx_in_enforce() -> None:
    hosts = (MxHost("mx1.example.com", 10, 25), MxHost("mx.other.test", 20, 25))
    dests = (
        Destination("mx1.example.com", "127.0.0.2", 25, 10),
        Destination("mx.other.test", "127.0.0.3", 25, 20),
    )
    route = Route("example.com", hosts, dests, True)
    kept = sts_hosts(route, POLICY)
    assert [h.name for h in kept.hosts] == ["mx1.example.com"]
    assert kept.destinations is not None and [d.ip for d in kept.destinations] == ["127.0.0.2"]
    assert kept.authenticated
    assert sts_hosts(route, Policy(Mode.TESTING, ("*.example.com",), 1)) is route
    assert not sts_hosts(route, Policy(Mode.ENFORCE, ("*.nowhere.test",), 1)).hosts


def test_enforce_verdict() -> None:
    now = datetime.datetime.now(datetime.UTC)
    soon = now + datetime.timedelta(days=1)
    pem = trustme.CA().issue_cert("mx1.example.com", not_after=soon).cert_chain_pems[0].bytes()
    leaf = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    policy = Policy(Mode.TESTING, ("*.example.com",), 1)
    assert enforce_verdict(policy, "mx1.example.com", True, leaf, now) is None
    assert enforce_verdict(policy, "mx.other.test", True, leaf, now) == "validation-failure"
    assert enforce_verdict(policy, "mx1.example.com", False, None, now) == "starttls-not-supported"
    assert (
        enforce_verdict(policy, "mx2.example.com", True, leaf, now) == "certificate-host-mismatch"
    )
    later = soon + datetime.timedelta(days=1)
    assert enforce_verdict(policy, "mx1.example.com", True, leaf, later) == "certificate-expired"


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("STARTTLS refused", "starttls-not-supported"),
        ("host name mismatch", "certificate-host-mismatch"),
        (
            "SSLCertVerificationError: certificate verify failed: certificate has expired",
            "certificate-expired",
        ),
        (
            "SSLCertVerificationError: certificate verify failed: unable to get local issuer",
            "certificate-not-trusted",
        ),
        ("validation-failure: DANE: no TLSA record matches", "validation-failure"),
        (
            "certificate-host-mismatch: DANE: the certificate does not name mx",
            "certificate-host-mismatch",
        ),
        ("SSLError: wrong version number", "validation-failure"),
    ],
)
def test_classify_tls_failure(detail: str, expected: str) -> None:
    assert classify_tls_failure(detail) == expected
