"""MTA-STS pure core: the TXT record, the policy file, mx patterns, cache decisions."""

from __future__ import annotations

import pytest

from relay.deliver.mta_sts import (
    MAX_AGE_LIMIT,
    CachedPolicy,
    Mode,
    Policy,
    PolicyError,
    StsRecord,
    mx_matches,
    parse_policy,
    parse_sts_record,
    refresh_needed,
    usable,
)

POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
    "mx: *.example.net\r\nmax_age: 604800\r\n"
)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["v=STSv1; id=20160831085700Z;"], StsRecord("20160831085700Z")),
        (["v=STSv1;id=abc"], StsRecord("abc")),
        (["some other", "v=STSv1; id=x1; ext=1"], StsRecord("x1")),
        ([], None),
        (["v=STSv1; id=a", "v=STSv1; id=b"], None),  # several: none (RFC 8461 3.1)
        (["v=STSv1; id=bad-id!"], None),
        (["v=STSv1;"], None),
        (["v=STSv1; id=" + "a" * 33], None),
        (["v=STSv2; id=a"], None),
    ],
)
def test_sts_record(texts: list[str], expected: StsRecord | None) -> None:
    assert parse_sts_record(texts) == expected


def test_policy_parses_crlf_and_repeated_mx() -> None:
    policy = parse_policy(POLICY)
    assert policy == Policy(Mode.ENFORCE, ("mail.example.com", "*.example.net"), 604800)


def test_policy_lf_unknown_keys_and_age_cap() -> None:
    text = "version: STSv1\nmode: testing\nmx: MX.Example.COM.\nfoo: bar\nmax_age: 99999999999\n"
    with pytest.raises(PolicyError, match="max_age"):
        parse_policy(text)
    policy = parse_policy(text.replace("99999999999", "999999999"))
    assert policy.mode is Mode.TESTING
    assert policy.mx == ("mx.example.com",)
    assert policy.max_age == MAX_AGE_LIMIT


def test_mode_none_needs_no_mx() -> None:
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 10\n").mode is Mode.NONE


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("mode: enforce\nmx: a.test\nmax_age: 1\n", "version"),
        ("version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n", "version"),
        ("version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: a.test\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n", "mx pattern"),
        ("<html>not a policy</html>\n", "key: value"),
    ],
)
def test_bad_policies(text: str, why: str) -> None:
    with pytest.raises(PolicyError, match=why):
        parse_policy(text)


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.example.com.", True),
        ("mail.example.com", "mail2.example.com", False),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "a.b.example.com", False),  # one label only (RFC 8461 4.1)
        ("*.example.com", "example.com", False),
        ("*.example.com", "mx1.example.com.evil.test", False),
        ("*.example.com", "xexample.com", False),
    ],
)
def test_mx_matches(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected


def test_policy_allows_any_pattern() -> None:
    policy = parse_policy(POLICY)
    assert policy.allows("mail.example.com")
    assert policy.allows("mx9.example.net")
    assert not policy.allows("mx9.example.org")


def cached(fetched_at: float = 1000.0, max_age: int = 86400 * 7, rid: str = "a") -> CachedPolicy:
    return CachedPolicy(
        "example.com", Policy(Mode.ENFORCE, ("*.example.com",), max_age), rid, fetched_at
    )


def test_refresh_decisions() -> None:
    entry = cached()
    assert refresh_needed(None, "a", 0.0)  # nothing cached, a record: fetch
    assert not refresh_needed(None, None, 0.0)  # no record, nothing cached: no MTA-STS
    assert not refresh_needed(entry, "a", 1000.0 + 3600)  # fresh, same id
    assert refresh_needed(entry, "b", 1000.0 + 1)  # the id changed
    assert refresh_needed(entry, "a", 1000.0 + 86400)  # daily
    assert not refresh_needed(entry, None, 1000.0 + 86400 * 2)  # record gone: keep cached
    assert refresh_needed(entry, "a", entry.expires_at)  # expired
    short = cached(max_age=3600)
    assert not refresh_needed(short, "a", 1000.0 + 1799)
    assert refresh_needed(short, "a", 1000.0 + 1800)  # half of a short max_age


def test_usable_until_expiry() -> None:
    entry = cached(max_age=100)
    assert usable(entry, 1099.0) is entry
    assert usable(entry, 1100.0) is None
    assert usable(None, 0.0) is None


def test_cache_entry_json_round_trip() -> None:
    entry = cached()
    assert CachedPolicy.from_json(entry.to_json()) == entry
    with pytest.raises(ValueError):
        CachedPolicy.from_json({**entry.to_json(), "mode": "bogus"})
