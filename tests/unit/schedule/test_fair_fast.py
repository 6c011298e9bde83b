"""FairQueue (its single-lane mode and flat hot path) takes jobs in exactly the order of
the plain version it replaced (fair_reference.py), for any mix of appends, requeues, peeks,
pops, clears and configurations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.schedule import fair
from relay.schedule.jobs import Job
from tests.unit.schedule import fair_reference as reference

TENANTS = st.sampled_from([None, "a", "b", "c"])
PRIORITIES = st.sampled_from([None, None, "transactional", "bulk", "other"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), TENANTS, PRIORITIES, st.integers(1, 30)),
        st.tuples(st.just("appendleft"), TENANTS, PRIORITIES, st.just(1)),
        st.tuples(st.just("pop"), st.none(), st.none(), st.integers(1, 30)),
        st.tuples(st.just("peek"), st.none(), st.none(), st.just(1)),
        st.tuples(st.just("clear"), st.none(), st.none(), st.just(1)),
    ),
    max_size=60,
)
WEIGHTS = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 4))
CLASSES = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(fair.CLASSES))
SHARES = st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0])


@settings(max_examples=400, deadline=None)
@given(OPS, WEIGHTS, CLASSES, SHARES)
def test_the_fast_queue_takes_jobs_in_the_reference_order(
    ops: list[tuple[str, str | None, str | None, int]],
    weights: dict[str, int],
    classes: dict[str, str],
    share: float,
) -> None:
    fast = fair.FairQueue(fair.Fairness(weights, classes, share))
    slow = reference.FairQueue(reference.Fairness(weights, classes, share))
    n = 0
    for op, tenant, priority, count in ops:
        for _ in range(count):
            if op in ("append", "appendleft"):
                n += 1
                job = Job(f"m{n}", "s@x", "g", None, "d", 0.0, [], tenant=tenant, priority=priority)
                getattr(fast, op)(job)
                getattr(slow, op)(job)
            elif op == "pop" and slow:
                assert fast[0] is slow[0]
                assert fast.popleft() is slow.popleft()
            elif op == "peek" and slow:
                assert fast[0] is slow[0]
            elif op == "clear":
                fast.clear()
                slow.clear()
            assert len(fast) == fast.size == len(slow) and bool(fast) == bool(slow)
        assert sorted(j.message_id for j in fast) == sorted(j.message_id for j in slow)
    while slow:
        assert fast.popleft() is slow.popleft()
    assert not fast


def test_a_reload_keeps_the_order_with_the_new_weights() -> None:
    fast = fair.FairQueue(fair.Fairness({"a": 1}))
    slow = reference.FairQueue(reference.Fairness({"a": 1}))
    jobs = [
        Job(f"m{i}", "s@x", "g", None, "d", 0.0, [], tenant="ab"[i % 3 // 2]) for i in range(30)
    ]
    for job in jobs:
        fast.append(job)
        slow.append(job)
    fast.fairness = fair.Fairness({"a": 3})
    slow.fairness = reference.Fairness({"a": 3})
    assert [fast.popleft() for _ in range(30)] == [slow.popleft() for _ in range(30)]


def test_a_turn_begun_with_one_lane_goes_on_when_a_second_tenant_comes() -> None:
    queue = fair.FairQueue(fair.Fairness({"a": 3}))
    for i in range(6):
        queue.append(Job(f"a{i}", "s@x", "g", None, "d", 0.0, [], tenant="a"))
    assert queue.popleft().message_id == "a0"  # a's turn: 2 more
    queue.append(Job("b0", "s@x", "g", None, "d", 0.0, [], tenant="b"))
    assert [queue.popleft().message_id for _ in range(4)] == ["a1", "a2", "b0", "a3"]
    assert queue._lane is not None  # one lane left: single-lane mode again
