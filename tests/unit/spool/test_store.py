from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from relay.spool import (
    MessageNotFound,
    Recipient,
    RecipientState,
    Spool,
    SpoolError,
)
from tests.unit.spool.helpers import leftovers, message, segments


async def test_store_load_round_trip(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    new = message(1, recipients=3)
    envelope = await spool.store(new)
    assert envelope.sender == new.sender and envelope.binding_group == "group1"
    assert [r.address for r in envelope.recipients] == list(new.recipients)
    assert envelope.size == len(new.content)
    assert await spool.load(envelope.message_id) == new.content
    await spool.close()

    spool = await Spool.open(tmp_path, max_resident_messages=0)
    [back] = spool.scan()
    assert back == envelope
    assert await spool.load(envelope.message_id) == new.content
    await spool.close()


async def test_ids_are_unique(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path, fsync=False) as spool:
        envelopes = await asyncio.gather(*(spool.store(message(i)) for i in range(200)))
    assert len({e.message_id for e in envelopes}) == 200


async def test_store_needs_a_recipient(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path) as spool:
        with pytest.raises(ValueError):
            await spool.store(message(0, recipients=0))


async def test_update_recipients_survives_reopen(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    envelope = await spool.store(message(1, recipients=2))
    deferred = Recipient("rcpt0@example.net", RecipientState.PENDING, 2, 1234.5, "451 4.7.1 later")
    delivered = Recipient("rcpt1@example.net", RecipientState.DELIVERED, 1, 0.0, "250 ok")
    assert await spool.update_recipients(envelope.message_id, [deferred, delivered]) is False
    await spool.close()

    spool = await Spool.open(tmp_path)
    [back] = spool.scan()
    assert back.recipients == [deferred, delivered]
    assert spool.statistics().recovered == 1
    await spool.close()


async def test_message_removed_when_every_recipient_final(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    envelope = await spool.store(message(1, recipients=2))
    keep = await spool.store(message(2, recipients=1))
    done = Recipient("rcpt0@example.net", RecipientState.DELIVERED, 1)
    assert await spool.update_recipients(envelope.message_id, [done]) is False
    bounced = Recipient("rcpt1@example.net", RecipientState.FAILED, 1, 0.0, "550 no such user")
    assert await spool.update_recipients(envelope.message_id, [bounced]) is True
    assert envelope.message_id not in spool
    with pytest.raises(MessageNotFound):
        await spool.load(envelope.message_id)
    with pytest.raises(MessageNotFound):
        await spool.update_recipients(envelope.message_id, [done])
    assert spool.statistics().removed == 1
    await spool.close()

    spool = await Spool.open(tmp_path)
    assert [e.message_id for e in spool.scan()] == [keep.message_id]
    await spool.close()


async def test_remove(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    envelope = await spool.store(message(1))
    await spool.remove(envelope.message_id)
    with pytest.raises(MessageNotFound):
        await spool.remove(envelope.message_id)
    await spool.close()
    spool = await Spool.open(tmp_path)
    assert spool.scan() == []
    await spool.close()


async def test_unknown_recipient_is_refused(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path) as spool:
        envelope = await spool.store(message(1))
        with pytest.raises(ValueError):
            await spool.update_recipients(envelope.message_id, [Recipient("nobody@x")])


async def test_returned_envelopes_are_copies(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path) as spool:
        envelope = await spool.store(message(1))
        envelope.recipients[0].attempts = 99
        spool.scan()[0].recipients[0].state = RecipientState.DELIVERED
        assert spool.get(envelope.message_id).recipients[0].attempts == 0
        assert spool.get(envelope.message_id).recipients[0].state is RecipientState.PENDING


async def test_resident_bodies_bounded_lru(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path, max_resident_messages=3) as spool:
        news = [message(i) for i in range(6)]
        stored = [await spool.store(new) for new in news]
        stats = spool.statistics()
        assert stats.resident_bodies == 3 and stats.resident_bytes == 3 * 2048
        for new, envelope in zip(news, stored, strict=True):
            assert await spool.load(envelope.message_id) == new.content
            assert spool.statistics().resident_bodies == 3


async def test_non_resident_body_read_from_disk(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path, max_resident_messages=1) as spool:
        first_message = message(0)
        first = await spool.store(first_message)
        await spool.store(message(1))  # pushes the first body out of RAM
        assert spool.statistics().resident_bodies == 1
        assert await spool.load(first.message_id) == first_message.content


async def test_statistics(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path) as spool:
        stats = spool.statistics()
        assert (stats.messages, stats.bytes, stats.stored, stats.quarantined) == (0, 0, 0, 0)
        a = await spool.store(message(1, size=1000))
        await spool.store(message(2, size=500))
        await spool.update_recipients(a.message_id, [Recipient("rcpt0@example.net", attempts=1)])
        stats = spool.statistics()
        assert stats.messages == 2 and stats.bytes == 1500 and stats.stored == 2
        assert stats.updates == 1 and stats.resident_bodies == 2
        assert stats.committed_records == 3 and stats.fsyncs == stats.commit_batches >= 1
        assert stats.segments == 1 and stats.disk_bytes > 1500
        with pytest.raises(dataclasses.FrozenInstanceError):
            stats.messages = 5  # type: ignore[misc]


async def test_group_commit_shares_fsyncs(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path) as spool:
        await asyncio.gather(*(spool.store(message(i)) for i in range(200)))
        stats = spool.statistics()
    assert stats.stored == 200
    assert stats.commit_batches < 200 and stats.fsyncs < 200
    assert stats.largest_batch > 1


async def test_lone_store_is_not_held_back(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path) as spool:
        await spool.store(message(0))  # warm up: first segment created
        started = time.monotonic()
        await spool.store(message(1))
        elapsed = time.monotonic() - started
        assert spool.statistics().largest_batch == 1
    assert elapsed < 0.5


async def test_concurrent_updates_and_stores_stay_consistent(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    envelopes = await asyncio.gather(*(spool.store(message(i)) for i in range(50)))

    async def work(i: int) -> None:
        mid = envelopes[i].message_id
        if i % 3 == 0:
            await spool.remove(mid)
        else:
            await spool.update_recipients(
                mid, [Recipient("rcpt0@example.net", attempts=i, next_attempt=float(i))]
            )

    await asyncio.gather(*(work(i) for i in range(50)), spool.store(message(99)))
    expected = {e.message_id: e for e in spool.scan()}
    await spool.close()
    spool = await Spool.open(tmp_path)
    assert {e.message_id: e for e in spool.scan()} == expected
    assert len(expected) == 50 - 17 + 1
    await spool.close()


async def test_compaction_reclaims_segments_and_keeps_live_messages(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path, segment_bytes=16 * 1024, fsync=False)
    keep = []
    for round_ in range(30):
        batch = await asyncio.gather(*(spool.store(message(i)) for i in range(8)))
        keep.append(batch[0])
        for envelope in batch[1:]:
            await spool.remove(envelope.message_id)
        await spool.update_recipients(
            batch[0].message_id, [Recipient("rcpt1@example.net", attempts=round_)]
        )
    stats = spool.statistics()
    assert stats.segments_deleted > 0 and stats.compacted > 0
    contents = {e.message_id: await spool.load(e.message_id) for e in keep}
    await spool.close()  # the dead segments' deletion (on its own thread) is done by now
    assert len(segments(tmp_path)) < 15

    spool = await Spool.open(tmp_path, max_resident_messages=0)
    assert {e.message_id for e in spool.scan()} == {e.message_id for e in keep}
    for round_, envelope in enumerate(keep):
        assert spool.get(envelope.message_id).recipients[1].attempts == round_
        assert await spool.load(envelope.message_id) == contents[envelope.message_id]
    assert leftovers(tmp_path) == []
    await spool.close()


async def test_directory_is_locked(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path):
        with pytest.raises(SpoolError, match="in use"):
            await Spool.open(tmp_path)


async def test_closed_spool_refuses_work(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    await spool.close()
    await spool.close()
    with pytest.raises(SpoolError):
        await spool.store(message(0))


async def test_injectable_clock_sets_id_prefix(tmp_path: Path) -> None:
    async with await Spool.open(tmp_path, clock=lambda: 1000.0) as spool:
        envelope = await spool.store(message(0))
    assert envelope.message_id.startswith(f"{1_000_000:011x}")


@pytest.mark.parametrize("fsync", [True, False])
async def test_segments_are_written_synchronously_when_fsync_is_on(
    tmp_path: Path, fsync: bool
) -> None:
    """With fsync on, the segment a 250 depends on is O_DSYNC: each append is durable when
    its write returns (there is no separate fdatasync to forget)."""
    import fcntl
    import os

    spool = await Spool.open(tmp_path, fsync=fsync)
    await spool.store(message(1))
    fd = spool._log._fd
    assert fd is not None
    assert bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DSYNC) is fsync
    assert spool.statistics().fsyncs == (1 if fsync else 0)
    await spool.close()


async def test_commits_do_not_wait_for_a_segment_being_deleted(tmp_path: Path) -> None:
    """A dead segment is deleted on a thread of its own: with that deletion stuck (freeing
    a full 64 MB segment takes the filesystem 50-100 ms here), messages are still stored
    and answered; the segments go once it is free, oldest first, and close waits for them."""
    import threading

    from relay.spool.fileops import FileOps

    class StuckUnlink(FileOps):
        def __init__(self) -> None:
            self.free = threading.Event()
            self.unlinked: list[str] = []

        def rename(self, src: str, dst: str) -> None:
            if dst.endswith(".dead"):  # taken out of the log, to be shrunk and unlinked
                assert self.free.wait(30), "never released"
                self.unlinked.append(Path(src).name)
            super().rename(src, dst)

    ops = StuckUnlink()
    spool = await Spool.open(tmp_path, segment_bytes=16 * 1024, file_ops=ops)
    for _ in range(6):  # fill segments, then make them dead
        batch = await asyncio.gather(*(spool.store(message(i)) for i in range(8)))
        for envelope in batch:
            await spool.remove(envelope.message_id)
    first = sorted(p.name for p in segments(tmp_path))
    stored = await asyncio.wait_for(spool.store(message(99)), 5)  # a commit plans deletions
    more = await asyncio.wait_for(asyncio.gather(*(spool.store(message(i)) for i in range(8))), 5)
    assert spool.statistics().segments_deleted > 0, "deletions were planned"
    assert ops.unlinked == [] and segments(tmp_path), "the unlinks are still stuck"
    ops.free.set()
    await spool.close()
    assert ops.unlinked == sorted(ops.unlinked) and ops.unlinked[0] == first[0]
    assert leftovers(tmp_path) == [], "every dead segment shrunk and unlinked"
    spool = await Spool.open(tmp_path)
    assert {e.message_id for e in spool.scan()} == {stored.message_id} | {
        e.message_id for e in more
    }
    await spool.close()


async def test_a_segment_left_half_deleted_by_a_crash_is_removed_at_recovery(
    tmp_path: Path,
) -> None:
    spool = await Spool.open(tmp_path)
    kept = await spool.store(message(0))
    await spool.close()
    (tmp_path / "000000000007.seg.dead").write_bytes(b"half shrunk, no header")
    spool = await Spool.open(tmp_path)
    assert [e.message_id for e in spool.scan()] == [kept.message_id]
    assert spool.statistics().quarantined == 0
    assert leftovers(tmp_path) == []
    await spool.close()
