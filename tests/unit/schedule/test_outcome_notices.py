"""One attempt's DSNs and its journal go to the notifier together (one spool commit), so a
crash never leaves a notice without the outcome it reports, or the reverse: a bounce
followed by a delivery after a restart, or a delay notice sent twice."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from relay.clock import ManualClock
from relay.dispose.decide import Decision, Deferred, Delivered, Failed, Notice
from relay.outcome import Reply
from relay.schedule.jobs import Job
from relay.schedule.outcomes import OutcomeRecorder
from relay.spool.model import Recipient, RecipientState

NOW = 1_000_000.0


class Notifier:
    """Records each call; `sends` says whether a DSN went out (False: all suppressed)."""

    def __init__(self, sends: bool = True) -> None:
        self.sends = sends
        self.calls: list[tuple[list[Notice], list[Recipient]]] = []

    async def __call__(
        self, job: Job, notices: Sequence[Notice], policy: Any, *, journal: Sequence[Recipient]
    ) -> bool:
        self.calls.append((list(notices), list(journal)))
        return self.sends


class Journal:
    def __init__(self) -> None:
        self.updates: list[tuple[str, list[Recipient]]] = []

    async def update_recipients(self, message_id: str, updates: Sequence[Recipient]) -> bool:
        self.updates.append((message_id, list(updates)))
        return False

    def evict(self, message_id: str) -> None:
        pass


def policy() -> Any:
    return SimpleNamespace(
        binding="b1",
        generate_delay_dsn=True,
        delay_dsn_retry_interval=600.0,
        delay_dsn_max_retry_interval=3600.0,
        drop_body_after_trans_fail=100,
    )


def attempt() -> tuple[Job, Decision]:
    ok, no, later = (
        Reply.make(250, "2.0.0", "ok"),
        Reply.make(550, "5.1.1", "no"),
        Reply.make(451, "4.3.0", "later"),
    )
    recipients = [(0, "a@x.test", 0), (1, "b@x.test", 2), (2, "c@x.test", 5)]
    job = Job("m1", "s@y.test", "g", None, "x.test", NOW - 7200, recipients)
    decision = Decision(
        delivered=[Delivered(0, "a@x.test", ok)],
        failed=[Failed(1, "b@x.test", no, 3)],
        deferred=[Deferred(2, "c@x.test", 6, NOW + 600, later)],
    )
    return job, decision


async def test_every_notice_of_an_attempt_and_the_whole_journal_in_one_call() -> None:
    journal, notifier = Journal(), Notifier()
    recorder = OutcomeRecorder(journal, ManualClock(NOW), lambda kind, fields: None, notifier)
    job, decision = attempt()
    retry, _ = await recorder.record(job, decision, [], policy())
    assert len(notifier.calls) == 1, "one call: one commit for the DSNs and the outcomes"
    notices, updates = notifier.calls[0]
    assert [(action, [f.address for f in failures]) for action, failures in notices] == [
        ("delayed", ["c@x.test"]),
        ("failed", ["b@x.test"]),
    ]
    assert [(u.address, u.state, u.delay_notices) for u in updates] == [
        ("a@x.test", RecipientState.DELIVERED, 0),
        ("b@x.test", RecipientState.FAILED, 0),
        ("c@x.test", RecipientState.PENDING, 1),  # counted in the notice's own commit
    ]
    assert journal.updates == [], "the notifier journalled them"
    assert retry is not None and retry.notices == {"c@x.test": 1}


async def test_no_dsn_sent_means_the_recorder_journals_itself() -> None:
    journal, notifier = Journal(), Notifier(sends=False)
    recorder = OutcomeRecorder(journal, ManualClock(NOW), lambda kind, fields: None, notifier)
    job, decision = attempt()
    await recorder.record(job, decision, [], policy())
    assert len(notifier.calls) == 1
    assert [(m, [u.address for u in us]) for m, us in journal.updates] == [
        ("m1", ["a@x.test", "b@x.test", "c@x.test"])
    ]


async def test_a_delay_notice_is_not_due_again_within_its_interval() -> None:
    journal, notifier = Journal(), Notifier()
    recorder = OutcomeRecorder(journal, ManualClock(NOW), lambda kind, fields: None, notifier)
    job, decision = attempt()
    job.notices = {"c@x.test": 1}
    job.received_at = NOW - 1000  # the first was due at 600 s, the second at 1,800
    decision.failed.clear()
    decision.delivered.clear()
    await recorder.record(job, decision, [], policy())
    assert notifier.calls == [], "the second notice is due an interval after the first"
    assert journal.updates[0][1][0].delay_notices == 1
