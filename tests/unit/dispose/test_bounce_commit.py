"""The bouncer spools an attempt's DSNs and the outcomes they report in one commit of a
real spool: a write that fails stores none of them, a retry stores all with one fsync, and
a suppressed notice (null sender) leaves the journal to the caller."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from relay.clock import ManualClock
from relay.dispose.bounce import Bouncer
from relay.dispose.decide import Failed
from relay.outcome import Reply
from relay.spool import Recipient, RecipientState, Spool, SpoolWriteError
from relay.spool.model import Envelope
from tests.support.spool_faults import FaultyOps
from tests.unit.spool.helpers import message


def job(envelope: Envelope, sender: str) -> Any:
    return SimpleNamespace(
        message_id=envelope.message_id,
        sender=sender,
        received_at=envelope.received_at,
        esmtp=None,
        tenant=None,
        campaign=None,
    )


def policy() -> Any:
    return SimpleNamespace(
        generate_bounces=True,
        mdn_failures_notify=None,
        mailerdaemon=None,
        bounces_inline_original="headers",
    )


async def test_a_delay_notice_a_bounce_and_their_outcomes_commit_together(
    tmp_path: Path,
) -> None:
    ops = FaultyOps()
    spool = await Spool.open(tmp_path, file_ops=ops)
    original = await spool.store(message(0, recipients=2))
    queued: list[Envelope] = []
    events: list[tuple[str, dict[str, object]]] = []
    bouncer = Bouncer(
        spool, queued.append, "relay.test", ManualClock(2e9), lambda k, f: events.append((k, f))
    )
    no, later = Reply.make(550, "5.1.1", "no"), Reply.make(451, "4.3.0", "later")
    notices = [
        ("delayed", [Failed(1, "rcpt1@example.net", later, 3)]),
        ("failed", [Failed(0, "rcpt0@example.net", no, 3)]),
    ]
    journal = [
        Recipient("rcpt0@example.net", RecipientState.FAILED, 3, 0.0, str(no)),
        Recipient("rcpt1@example.net", RecipientState.PENDING, 3, 9e9, str(later), 1),
    ]
    message_job = job(original, "sender0@example.com")
    ops.write_fault = errno.EIO
    with pytest.raises(SpoolWriteError):
        await bouncer(message_job, notices, policy(), journal=journal)
    assert [e.message_id for e in spool.scan()] == [original.message_id]
    assert queued == [] and events == [] and bouncer.sent == 0
    ops.write_fault = None
    fsyncs = spool.statistics().fsyncs
    assert await bouncer(message_job, notices, policy(), journal=journal)
    assert spool.statistics().fsyncs == fsyncs + 1, "two DSNs and the journal: one commit"
    assert [f["action"] for kind, f in events if kind == "dsn"] == ["delayed", "failed"]
    assert len(queued) == 2 and all(
        e.recipients[0].address == "sender0@example.com" for e in queued
    )
    kept = spool.get(original.message_id).recipients
    assert [(r.state, r.delay_notices) for r in kept] == [
        (RecipientState.FAILED, 0),
        (RecipientState.PENDING, 1),
    ]
    await spool.close()


async def test_no_dsn_for_the_null_sender_leaves_the_journal_to_the_caller(
    tmp_path: Path,
) -> None:
    spool = await Spool.open(tmp_path)
    original = await spool.store(message(0, recipients=1))
    events: list[tuple[str, dict[str, object]]] = []
    bouncer = Bouncer(
        spool, lambda e: None, "relay.test", ManualClock(2e9), lambda k, f: events.append((k, f))
    )
    no = Reply.make(550, "5.1.1", "no")
    journal = [Recipient("rcpt0@example.net", RecipientState.FAILED, 1, 0.0, str(no))]
    sent = await bouncer(
        job(original, ""),
        [("failed", [Failed(0, "rcpt0@example.net", no, 1)])],
        policy(),
        journal=journal,
    )
    assert not sent
    assert [kind for kind, _ in events] == ["dsn_suppressed"]
    assert spool.get(original.message_id).recipients[0].state is RecipientState.PENDING
    await spool.close()
