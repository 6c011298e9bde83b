"""The handoff from injection: durable first, announced before the waiter hears of it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from relay.dispose.feedback import Complaint
from relay.handoff import Handoff
from relay.spool import NewMessage, Spool
from relay.spool.model import Envelope
from tests.unit.spool.helpers import message


async def test_announced_before_the_waiter_learns_it_is_stored(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    order: list[str] = []

    def announce(envelope: Envelope, new: NewMessage) -> None:
        assert envelope.message_id in spool  # durable and indexed before it is announced
        order.append("announce")

    handoff = Handoff(spool.submit, announce, lambda c, m: None)
    future = handoff.submit(message(1))
    future.add_done_callback(lambda f: order.append("waiter"))
    envelope = await future
    await asyncio.sleep(0)
    assert order == ["announce", "waiter"]
    assert (await handoff.store(message(2))).message_id != envelope.message_id
    await spool.close()


async def test_an_announce_failure_is_logged_and_the_message_still_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = await Spool.open(tmp_path)

    def announce(envelope: Envelope, new: NewMessage) -> None:
        raise RuntimeError("scheduler trouble")

    handoff = Handoff(spool.submit, announce, lambda c, m: None)
    with caplog.at_level(logging.ERROR, logger="relay"):
        envelope = await handoff.submit(message(1))
        await asyncio.sleep(0)
    assert envelope.message_id in spool
    assert "spooled but not queued until restart" in caplog.text
    await spool.close()


async def test_a_spool_failure_reaches_the_waiter_and_nothing_is_announced(
    tmp_path: Path,
) -> None:
    spool = await Spool.open(tmp_path)
    await spool.close()
    announced: list[str] = []
    handoff = Handoff(spool.submit, lambda e, m: announced.append(e.message_id), lambda c, m: None)
    with pytest.raises(Exception, match="closed"):
        await handoff.store(message(1))
    assert announced == []


async def test_mail_to_the_fbl_address_alone_is_counted_not_stored(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    complaints: list[Complaint | None] = []
    handoff = Handoff(
        spool.submit, lambda e, m: None, lambda c, m: complaints.append(c), "FBL@relay.test"
    )
    report = message(1)._replace(recipients=("fbl@relay.test",))
    envelope = await handoff.submit(report)
    assert envelope.message_id == "fbl-report" and len(spool) == 0
    assert complaints == [None]  # not an ARF report: counted as unattributable
    mixed = message(2)._replace(recipients=("fbl@relay.test", "someone@example.net"))
    stored = await handoff.submit(mixed)
    assert [r.address for r in stored.recipients] == ["someone@example.net"]
    await spool.close()
