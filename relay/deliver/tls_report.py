"""SMTP TLS reporting (RFC 8460), the pure part: counting TLS sessions per policy domain
and UTC day, the `_smtp._tls` TXT record, and the daily JSON report and its mail.

    counts = TlsCounts()
    counts.record(Session(domain, "sts", policy_lines, mx_patterns, result, mx, src, dst), now)
    counts.day(now)                        # today's counts (the admin API)
    build_report(counts.bucket(day, domain), organization, contact, report_id)   # dict
    parse_tlsrpt_record(txt_texts)         # the rua URIs, or None

Result types are RFC 8460 4.3's: starttls-not-supported, certificate-host-mismatch,
certificate-expired, certificate-not-trusted, validation-failure, tlsa-invalid,
dnssec-invalid, dane-required, sts-policy-fetch-error, sts-policy-invalid,
sts-webpki-invalid.
"""

from __future__ import annotations

import datetime
import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

__all__ = [
    "RESULT_TYPES",
    "Bucket",
    "Session",
    "TlsCounts",
    "build_report",
    "day_of",
    "gzip_report",
    "parse_tlsrpt_record",
    "report_mail",
]

RESULT_TYPES = frozenset(
    {
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
)
POLICY_TYPES = frozenset({"sts", "tlsa", "no-policy-found"})


def day_of(now: float) -> str:
    """The UTC day of a time, "YYYY-MM-DD"."""
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class Session:
    """One TLS session (or attempt) to count. `result` None: successful."""

    domain: str
    policy_type: str  # "sts", "tlsa" or "no-policy-found"
    policy_string: tuple[str, ...] = ()
    mx_host: tuple[str, ...] = ()  # the policy's mx patterns (sts)
    result: str | None = None
    receiving_mx: str = ""
    sending_ip: str = ""
    receiving_ip: str = ""


@dataclass(slots=True)
class Bucket:
    """One policy domain x policy type x UTC day."""

    day: str
    domain: str
    policy_type: str
    policy_string: tuple[str, ...] = ()
    mx_host: tuple[str, ...] = ()
    successes: int = 0
    # (result, receiving mx, sending ip, receiving ip) -> count
    failures: dict[tuple[str, str, str, str], int] = field(default_factory=dict)

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())

    def by_result(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (result, *_), count in self.failures.items():
            out[result] = out.get(result, 0) + count
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "domain": self.domain,
            "policy_type": self.policy_type,
            "policy_string": list(self.policy_string),
            "mx_host": list(self.mx_host),
            "successes": self.successes,
            "failures": [[*key, count] for key, count in self.failures.items()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Bucket:
        failures = {
            (str(r), str(mx), str(src), str(dst)): int(n) for r, mx, src, dst, n in data["failures"]
        }
        return cls(
            str(data["day"]),
            str(data["domain"]),
            str(data["policy_type"]),
            tuple(str(s) for s in data["policy_string"]),
            tuple(str(s) for s in data["mx_host"]),
            int(data["successes"]),
            failures,
        )


class TlsCounts:
    """Counts per (UTC day, policy domain, policy type); plain data, saved as JSON."""

    def __init__(self, buckets: Iterable[Bucket] = ()) -> None:
        self._buckets: dict[tuple[str, str, str], Bucket] = {
            (b.day, b.domain, b.policy_type): b for b in buckets
        }
        self.changed = False

    def record(self, session: Session, now: float) -> None:
        if session.result is not None and session.result not in RESULT_TYPES:
            raise ValueError(f"unknown RFC 8460 result type {session.result!r}")
        key = (day_of(now), session.domain.lower(), session.policy_type)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(*key)
        if session.policy_string:
            bucket.policy_string = session.policy_string
        if session.mx_host:
            bucket.mx_host = session.mx_host
        if session.result is None:
            bucket.successes += 1
        else:
            failure = (
                session.result,
                session.receiving_mx,
                session.sending_ip,
                session.receiving_ip,
            )
            bucket.failures[failure] = bucket.failures.get(failure, 0) + 1
        self.changed = True

    def buckets(self) -> list[Bucket]:
        return list(self._buckets.values())

    def day(self, now: float) -> list[Bucket]:
        today = day_of(now)
        return [b for b in self._buckets.values() if b.day == today]

    def before(self, now: float) -> list[Bucket]:
        """The buckets of days that are over (to report, then `drop`)."""
        today = day_of(now)
        return [b for b in self._buckets.values() if b.day < today]

    def drop(self, day: str, domain: str) -> None:
        for key in [k for k in self._buckets if k[0] == day and k[1] == domain]:
            del self._buckets[key]
        self.changed = True

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "buckets": [b.to_json() for b in self._buckets.values()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TlsCounts:
        return cls(Bucket.from_json(b) for b in data.get("buckets", []))


def parse_tlsrpt_record(texts: Iterable[str]) -> tuple[str, ...] | None:
    """The rua URIs of the `_smtp._tls` TXT record (RFC 8460 3): exactly one record
    starting `v=TLSRPTv1`; only mailto: and https: URIs are kept."""
    found = [t for t in texts if t.strip().startswith("v=TLSRPTv1")]
    if len(found) != 1:
        return None
    fields: dict[str, str] = {}
    for part in found[0].split(";"):
        key, eq, value = part.strip().partition("=")
        if eq:
            fields.setdefault(key.strip(), value.strip())
    if fields.get("v") != "TLSRPTv1" or not fields.get("rua"):
        return None
    uris = tuple(
        u.strip() for u in fields["rua"].split(",") if u.strip().startswith(("mailto:", "https://"))
    )
    return uris or None


def build_report(
    buckets: Iterable[Bucket], organization: str, contact: str, report_id: str
) -> dict[str, Any]:
    """The RFC 8460 4 report for one policy domain's day (its buckets share day and
    domain: one `policies` entry per policy type)."""
    items = list(buckets)
    if not items:
        raise ValueError("a report needs at least one day's counts")
    day = items[0].day
    policies: list[dict[str, Any]] = []
    for bucket in items:
        policy: dict[str, Any] = {
            "policy-type": bucket.policy_type,
            "policy-domain": bucket.domain,
        }
        if bucket.policy_string:
            policy["policy-string"] = list(bucket.policy_string)
        if bucket.mx_host:
            policy["mx-host"] = list(bucket.mx_host)
        entry: dict[str, Any] = {
            "policy": policy,
            "summary": {
                "total-successful-session-count": bucket.successes,
                "total-failure-session-count": bucket.failure_count,
            },
        }
        details = []
        for (result, mx, src, dst), count in sorted(bucket.failures.items()):
            detail: dict[str, Any] = {"result-type": result, "failed-session-count": count}
            if src:
                detail["sending-mta-ip"] = src
            if mx:
                detail["receiving-mx-hostname"] = mx
            if dst:
                detail["receiving-ip"] = dst
            details.append(detail)
        if details:
            entry["failure-details"] = details
        policies.append(entry)
    return {
        "organization-name": organization,
        "date-range": {
            "start-datetime": f"{day}T00:00:00Z",
            "end-datetime": f"{day}T23:59:59Z",
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    }


def gzip_report(report: Mapping[str, Any]) -> bytes:
    text = json.dumps(report, separators=(",", ":"), sort_keys=True)
    return gzip.compress(text.encode("utf-8"), mtime=0)


def report_filename(organization: str, domain: str, day: str) -> str:
    """RFC 8460 5.3: sender!policy-domain!begin-timestamp!end-timestamp.json.gz"""
    begin = int(datetime.datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp())
    return f"{organization}!{domain}!{begin}!{begin + 86399}.json.gz"


def report_mail(
    report: Mapping[str, Any], sender: str, recipient: str, domain: str, now: float
) -> bytes:
    """The report as mail (RFC 8460 5.3): multipart/report; report-type=tlsrpt with the
    gzipped JSON as application/tlsrpt+gzip."""
    organization = str(report["organization-name"])
    report_id = str(report["report-id"])
    day = str(report["date-range"]["start-datetime"])[:10]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Subject"] = (
        f"Report Domain: {domain} Submitter: {organization} Report-ID: <{report_id}>"
    )
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = organization
    message.set_content(
        f"This is an aggregate TLS report from {organization} for {domain} on {day}.\n"
    )
    message.add_attachment(
        gzip_report(report),
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=report_filename(organization, domain, day),
    )
    message.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"')
    message.set_boundary(make_msgid().strip("<>").replace("@", "."))
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
