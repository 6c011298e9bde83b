from __future__ import annotations

import random
from collections import Counter

import pytest

from relay.deliver import DeliverySettings, Outcome, RouteError
from relay.deliver.dns import DnsAnswer, LookupStatus, MxRecord
from relay.deliver.route import (
    Destination,
    MxHost,
    address_failure,
    expand_destinations,
    mx_hosts_from_answer,
    order_mx,
    parse_gateway,
)

POLICY = DeliverySettings(binding="b1")


def mx(*records: tuple[int, str]) -> DnsAnswer:
    return DnsAnswer("d.test", "MX", LookupStatus.OK, mx=tuple(MxRecord(p, h) for p, h in records))


def test_order_mx_sorts_by_preference() -> None:
    records = [MxRecord(30, "c"), MxRecord(10, "a"), MxRecord(20, "b")]
    assert [r.exchange for r in order_mx(records, random.Random(1))] == ["a", "b", "c"]


def test_order_mx_shuffles_equal_preferences() -> None:
    records = [MxRecord(10, "a"), MxRecord(10, "b"), MxRecord(10, "c"), MxRecord(5, "z")]
    rng = random.Random(7)
    firsts = Counter(order_mx(records, rng)[1].exchange for _ in range(300))
    assert set(firsts) == {"a", "b", "c"}
    assert min(firsts.values()) > 60  # roughly uniform
    assert all(order_mx(records, rng)[0].exchange == "z" for _ in range(20))


def test_order_mx_depends_on_the_random_source_not_on_the_answers_order() -> None:
    """A seeded router orders the same hosts the same way whatever order the DNS answer
    listed them in (the loopback routing test's seeds relied on it)."""
    records = [MxRecord(10, "a"), MxRecord(10, "b"), MxRecord(10, "c"), MxRecord(20, "d")]
    for seed in range(20):
        ordered = order_mx(records, random.Random(seed))
        assert order_mx(records[::-1], random.Random(seed)) == ordered


def test_order_mx_keeps_a_host_once_at_its_best_preference() -> None:
    records = [MxRecord(20, "a"), MxRecord(10, "a"), MxRecord(15, "b")]
    assert [(r.preference, r.exchange) for r in order_mx(records, random.Random())] == [
        (10, "a"),
        (15, "b"),
    ]


def test_mx_answer_gives_hosts_with_the_port() -> None:
    hosts = mx_hosts_from_answer("d.test", mx((10, "a.d.test")), 2525, random.Random(), POLICY)
    assert hosts == (MxHost("a.d.test", 10, 2525),)


def test_null_mx_is_permanent_5_1_10() -> None:
    with pytest.raises(RouteError) as caught:
        mx_hosts_from_answer("d.test", mx((0, "")), 25, random.Random(), POLICY)
    assert caught.value.outcome is Outcome.PERMANENT
    assert str(caught.value.reply.enhanced) == "5.1.10"
    assert caught.value.failure.binding == "b1"


def test_a_dot_among_real_mx_records_is_ignored() -> None:
    hosts = mx_hosts_from_answer("d.test", mx((0, ""), (10, "a")), 25, random.Random(), POLICY)
    assert [h.name for h in hosts] == ["a"]


def test_no_mx_means_implicit_mx() -> None:
    answer = DnsAnswer("d.test", "MX", LookupStatus.NODATA)
    hosts = mx_hosts_from_answer("d.test", answer, 25, random.Random(), POLICY)
    assert hosts == (MxHost("d.test", 0, 25, implicit=True),)


@pytest.mark.parametrize(
    ("status", "outcome", "enhanced"),
    [
        (LookupStatus.NXDOMAIN, Outcome.PERMANENT, "5.1.2"),
        (LookupStatus.TEMPFAIL, Outcome.TEMPORARY, "4.4.3"),
    ],
)
def test_mx_failures(status: LookupStatus, outcome: Outcome, enhanced: str) -> None:
    with pytest.raises(RouteError) as caught:
        mx_hosts_from_answer(
            "d.test", DnsAnswer("d.test", "MX", status), 25, random.Random(), POLICY
        )
    assert caught.value.outcome is outcome
    assert str(caught.value.reply.enhanced) == enhanced


def test_expand_destinations_in_host_order_without_repeats() -> None:
    hosts = [MxHost("a", 10, 25), MxHost("b", 20, 25)]
    answers = [
        DnsAnswer("a", "A", LookupStatus.OK, addresses=("192.0.2.1", "2001:db8::1")),
        DnsAnswer("b", "A", LookupStatus.OK, addresses=("192.0.2.1", "192.0.2.2")),
    ]
    assert expand_destinations(hosts, answers) == (
        Destination("a", "192.0.2.1", 25, 10),
        Destination("a", "2001:db8::1", 25, 10),
        Destination("b", "192.0.2.2", 25, 20),
    )


def test_address_failure_is_temporary_only_if_a_lookup_failed_temporarily() -> None:
    nx = DnsAnswer("a", "A", LookupStatus.NXDOMAIN)
    temp = DnsAnswer("b", "A", LookupStatus.TEMPFAIL, detail="SERVFAIL")
    assert address_failure(POLICY, "d.test", [nx]).outcome is Outcome.PERMANENT
    error = address_failure(POLICY, "d.test", [nx, temp])
    assert error.outcome is Outcome.TEMPORARY
    assert "SERVFAIL" in error.failure.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smart.host.test", ("smart.host.test", None)),
        ("Smart.Host.test.:2525", ("smart.host.test", 2525)),
        ("10.0.0.1", ("10.0.0.1", None)),
        ("10.0.0.1:26", ("10.0.0.1", 26)),
        ("[fe80::a00]:1", ("fe80::a00", 1)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
    ],
)
def test_parse_gateway(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_gateway(text) == expected


@pytest.mark.parametrize("text", ["[::1", "[::1]x", "host:0", "host:abc", ":25"])
def test_parse_gateway_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_gateway(text)
