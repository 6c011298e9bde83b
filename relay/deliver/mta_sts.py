"""MTA-STS (RFC 8461), the pure part: the `_mta-sts` TXT record, the policy file, which MX
hosts a policy allows, and when a cached policy must be fetched again.

Nothing here does I/O; `relay/deliver/sts_fetch.py` looks up, fetches and stores, and the
clock (`now`, seconds since the epoch) is always passed in.

    record = parse_sts_record(txt_texts)         # StsRecord(id) or None
    policy = parse_policy(body)                  # Policy, or raises PolicyError
    policy.allows("mx1.example.com")             # mx patterns, RFC 8461 4.1
    refresh_needed(cached, record_id, now)       # fetch again?
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_AGE_LIMIT",
    "CachedPolicy",
    "Mode",
    "Policy",
    "PolicyError",
    "StsRecord",
    "mx_matches",
    "parse_policy",
    "parse_sts_record",
    "refresh_needed",
    "usable",
]

MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: max_age at most a year
REFRESH_INTERVAL = 86_400.0  # fetch again at least daily (Momentum, RFC 8461 10.2)
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,32}")


class Mode(enum.Enum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


class PolicyError(ValueError):
    """The policy file is not a valid STSv1 policy (the text says why)."""


@dataclass(frozen=True, slots=True)
class StsRecord:
    """The `_mta-sts.DOMAIN` TXT record: `v=STSv1; id=...;`."""

    id: str


@dataclass(frozen=True, slots=True)
class Policy:
    mode: Mode
    mx: tuple[str, ...]  # lower-case patterns, "*.example.com" or "mx.example.com"
    max_age: int  # seconds

    def allows(self, host: str) -> bool:
        """Whether an MX host name matches one of the policy's `mx` patterns."""
        return any(mx_matches(pattern, host) for pattern in self.mx)


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """A policy as cached: which record id it was fetched under, and when."""

    domain: str
    policy: Policy
    record_id: str
    fetched_at: float

    @property
    def expires_at(self) -> float:
        return self.fetched_at + self.policy.max_age

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "id": self.record_id,
            "fetched_at": self.fetched_at,
            "mode": self.policy.mode.value,
            "mx": list(self.policy.mx),
            "max_age": self.policy.max_age,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CachedPolicy:
        """Raises KeyError / ValueError / TypeError on a malformed entry."""
        policy = Policy(
            Mode(str(data["mode"])), tuple(str(m) for m in data["mx"]), int(data["max_age"])
        )
        return cls(str(data["domain"]), policy, str(data["id"]), float(data["fetched_at"]))


def parse_sts_record(texts: Iterable[str]) -> StsRecord | None:
    """The STS record among a name's TXT records (RFC 8461 3.1): exactly one record
    starting `v=STSv1` with a valid `id`; none, several or a malformed one: None."""
    found = [t for t in texts if t.strip().startswith("v=STSv1")]
    if len(found) != 1:
        return None
    fields: dict[str, str] = {}
    for part in found[0].split(";"):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            return None
        fields.setdefault(key.strip(), value.strip())
    if fields.get("v") != "STSv1":
        return None
    record_id = fields.get("id", "")
    return StsRecord(record_id) if _ID.fullmatch(record_id) else None


def parse_policy(text: str) -> Policy:
    """An STSv1 policy file (RFC 8461 3.2): `key: value` lines (CRLF or LF), `version`
    first... in practice any order; unknown keys are ignored, `mx` may repeat."""
    values: dict[str, str] = {}
    mx: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        key, colon, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not colon or not _KEY.fullmatch(key):
            raise PolicyError(f"line {number}: expected 'key: value', got {raw[:60]!r}")
        if key == "mx":
            mx.append(value.rstrip(".").lower())
        else:
            values.setdefault(key, value)
    if values.get("version") != "STSv1":
        raise PolicyError(f"version is {values.get('version')!r}, not 'STSv1'")
    try:
        mode = Mode(values.get("mode", ""))
    except ValueError:
        raise PolicyError(
            f"mode {values.get('mode')!r}: expected enforce, testing or none"
        ) from None
    age = values.get("max_age", "")
    if not age.isdigit() or len(age) > 10:
        raise PolicyError(f"max_age {age!r} is not a number of seconds")
    if mode is not Mode.NONE and not mx:
        raise PolicyError(f"mode {mode.value} needs at least one mx pattern")
    for pattern in mx:
        if not _valid_pattern(pattern):
            raise PolicyError(f"mx pattern {pattern!r} is not a host name or *.domain")
    return Policy(mode, tuple(mx), min(int(age), MAX_AGE_LIMIT))


def _valid_pattern(pattern: str) -> bool:
    name = pattern[2:] if pattern.startswith("*.") else pattern
    labels = name.split(".")
    return len(labels) >= 1 and all(
        re.fullmatch(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?", label) for label in labels
    )


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: a literal name matches itself; `*.example.com` matches exactly one
    more label on the left (`mx.example.com`, not `a.b.example.com` nor `example.com`)."""
    pattern = pattern.rstrip(".").lower()
    host = host.rstrip(".").lower()
    if pattern.startswith("*."):
        head, dot, rest = host.partition(".")
        return bool(head) and bool(dot) and rest == pattern[2:]
    return pattern == host


def usable(cached: CachedPolicy | None, now: float) -> CachedPolicy | None:
    """A cached policy is applied only until it expires (RFC 8461 5.1)."""
    if cached is None or now >= cached.expires_at:
        return None
    return cached


def refresh_needed(cached: CachedPolicy | None, record_id: str | None, now: float) -> bool:
    """Fetch the policy (again)? When none is cached, when the TXT record names another
    id, when the cached one has expired, and at least daily, or at half its max_age when
    that is sooner (so it is refreshed well before it expires). With no TXT record
    (`record_id` None) a cached unexpired policy is kept as it is (RFC 8461 3.3)."""
    if cached is None:
        return record_id is not None
    if now >= cached.expires_at:
        return record_id is not None
    if record_id is None:
        return False
    if record_id != cached.record_id:
        return True
    return now >= cached.fetched_at + min(REFRESH_INTERVAL, cached.policy.max_age / 2)
