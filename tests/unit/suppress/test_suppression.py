"""The suppression list: the in-memory set (pure), its SQLite file followed by a second
process's connection through PRAGMA data_version, and the lookup cost."""

from __future__ import annotations

import time
from pathlib import Path

from relay.outcome import Reply
from relay.schedule.outcomes import no_such_user
from relay.suppress.entries import Entry, Suppressions
from relay.suppress.service import SuppressionList


def test_global_and_tenant_entries() -> None:
    s = Suppressions()
    assert s.add(None, "A@X.test") and not s.add("", "a@x.test") and s.add("t1", "b@x.test")
    assert len(s) == 2
    assert s.suppressed(None, "a@x.test") and s.suppressed("t9", "A@x.TEST")
    assert s.suppressed("t1", "b@x.test")
    assert not s.suppressed("t2", "b@x.test") and not s.suppressed(None, "b@x.test")
    assert s.split("t1", ["c@x.test", "b@x.test", "a@x.test"]) == [1, 2]
    assert s.refuses("t1", "b@x.test")
    s.action = "drop"
    assert not s.refuses("t1", "b@x.test") and s.suppressed("t1", "b@x.test")
    s.enabled = False
    assert not s.suppressed(None, "a@x.test") and s.split(None, ["a@x.test"]) == []
    s.enabled = True
    assert s.remove("t1", "B@x.test") and not s.remove("t1", "b@x.test") and len(s) == 1


def test_no_such_user_is_what_the_classifier_calls_an_invalid_recipient() -> None:
    assert no_such_user(Reply.parse(550, "5.1.1 <a@x>: Recipient address rejected"))
    assert no_such_user(Reply.parse(550, "5.1.10 RESOLVER.ADR.RecipientNotFound"))
    assert no_such_user(Reply.parse(550, "No such user here"))
    assert not no_such_user(Reply.parse(552, "5.2.2 mailbox full"))
    assert not no_such_user(Reply.parse(450, "4.1.1 try later"))
    assert not no_such_user(Reply.make(550, "5.1.1", "made up by relay"))  # local


async def test_a_follower_sees_the_writers_changes(tmp_path: Path) -> None:
    now = time.time
    writer = SuppressionList(tmp_path, action="reject", clock=now)
    await writer.open(writer=True)
    assert writer.record("t1", "A@x.test", "550 5.1.1", "bounce")
    assert not writer.record("t1", "a@x.test", "550 5.1.1", "bounce")  # known: not again
    await writer.add([Entry("", "b@x.test", "note", "operator", now())])
    await writer.flush()
    follower = SuppressionList(tmp_path, action="reject", clock=now)
    await follower.open(writer=False)
    assert follower.memory.suppressed("t1", "a@x.test") and len(follower.memory) == 2
    assert await follower.catch_up() == 0  # nothing new: data_version did not move
    await writer.add([Entry("", "c@x.test", "", "operator", now())])
    assert await writer.remove(None, "b@x.test") and not await writer.remove(None, "b@x.test")
    assert await follower.catch_up() == 2
    assert follower.memory.suppressed(None, "c@x.test")
    assert not follower.memory.suppressed(None, "b@x.test")
    entries, total = await writer.store.entries(limit=10)
    assert total == 2 and [(e.tenant, e.address, e.source) for e in entries] == [
        ("", "c@x.test", "operator"),
        ("t1", "a@x.test", "bounce"),
    ]
    await follower.close()
    await writer.close()
    # Reopened (a restart): every entry back; the change log starts empty again.
    again = SuppressionList(tmp_path, action="reject", clock=now)
    await again.open(writer=True)
    assert len(again.memory) == 2 and again.memory.suppressed("t1", "a@x.test")
    await again.close()


def test_lookup_costs_a_few_hundred_nanoseconds() -> None:
    s = Suppressions()
    for i in range(200_000):
        s.add(None if i % 2 else f"t{i % 50}", f"user{i}@example{i % 1000}.test")
    probes = [f"probe{i}@example.test" for i in range(1000)] + [
        f"user{i}@example{i % 1000}.test" for i in range(1000)
    ]
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for address in probes:
            s.suppressed("t3", address)
        best = min(best, (time.perf_counter() - start) / len(probes))
    print(f"suppression lookup: {best * 1e9:.0f} ns with {len(s)} entries")
    assert best < 5e-6  # a few microseconds at most, even on a loaded test machine
