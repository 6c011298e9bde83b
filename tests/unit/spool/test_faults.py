"""Disk full, I/O errors and fsync failures: typed errors, nothing partial, recovery after."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.spool import Spool, SpoolFullError, SpoolWriteError
from tests.support.spool_faults import FaultyOps
from tests.support.tmpfs import mounted_tmpfs
from tests.unit.spool.helpers import leftovers, message


async def _check_reopen(directory: Path, expected: dict[str, bytes]) -> None:
    spool = await Spool.open(directory, max_resident_messages=0)
    assert {e.message_id for e in spool.scan()} == set(expected)
    for message_id, content in expected.items():
        assert await spool.load(message_id) == content
    assert spool.statistics().quarantined == 0
    assert leftovers(directory) == []
    await spool.close()


@pytest.mark.parametrize(
    ("where", "code", "error"),
    [
        ("write", errno.ENOSPC, SpoolFullError),
        ("write", errno.EDQUOT, SpoolFullError),
        ("write", errno.EIO, SpoolWriteError),
        ("sync", errno.EIO, SpoolWriteError),
        ("sync", errno.ENOSPC, SpoolFullError),
    ],
)
async def test_fault_raises_typed_error_and_leaves_nothing(
    tmp_path: Path, where: str, code: int, error: type[Exception]
) -> None:
    ops = FaultyOps()
    spool = await Spool.open(tmp_path, file_ops=ops)
    kept = {}
    for i in range(3):
        new = message(i)
        kept[(await spool.store(new)).message_id] = new.content
    if where == "write":
        ops.write_fault = code
    else:
        ops.sync_fault = code
    with pytest.raises(error):
        await spool.store(message(10))
    assert spool.statistics().messages == 3 and spool.statistics().failed_batches == 1
    ops.write_fault = ops.sync_fault = None  # the disk recovers
    new = message(11)
    kept[(await spool.store(new)).message_id] = new.content
    await spool.close()
    await _check_reopen(tmp_path, kept)


async def test_concurrent_stores_all_fail_then_recover(tmp_path: Path) -> None:
    ops = FaultyOps()
    spool = await Spool.open(tmp_path, file_ops=ops)
    ops.write_fault = errno.ENOSPC
    results = await asyncio.gather(
        *(spool.store(message(i)) for i in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, SpoolFullError) for r in results)
    ops.write_fault = None
    envelope = await spool.store(message(99))
    assert len(spool) == 1
    await spool.close()
    spool = await Spool.open(tmp_path)
    assert [e.message_id for e in spool.scan()] == [envelope.message_id]
    await spool.close()


async def test_cannot_create_segment(tmp_path: Path) -> None:
    ops = FaultyOps()
    ops.open_fault = errno.EACCES
    spool = await Spool.open(tmp_path, file_ops=ops)
    with pytest.raises(SpoolWriteError):
        await spool.store(message(0))
    ops.open_fault = errno.ENOSPC
    with pytest.raises(SpoolFullError):
        await spool.store(message(0))
    ops.open_fault = None
    new = message(1)
    envelope = await spool.store(new)
    await spool.close()
    await _check_reopen(tmp_path, {envelope.message_id: new.content})


async def test_update_failure_keeps_old_state(tmp_path: Path) -> None:
    from relay.spool import Recipient

    ops = FaultyOps()
    spool = await Spool.open(tmp_path, file_ops=ops)
    envelope = await spool.store(message(0))
    ops.sync_fault = errno.EIO
    with pytest.raises(SpoolWriteError):
        await spool.update_recipients(
            envelope.message_id, [Recipient("rcpt0@example.net", attempts=5)]
        )
    assert spool.get(envelope.message_id).recipients[0].attempts == 0
    ops.sync_fault = None
    await spool.update_recipients(envelope.message_id, [Recipient("rcpt0@example.net", attempts=6)])
    await spool.close()
    spool = await Spool.open(tmp_path)
    assert spool.get(envelope.message_id).recipients[0].attempts == 6
    await spool.close()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "tmpfs", "256k") as mount:
        yield mount


async def test_real_disk_full_on_tmpfs(small_tmpfs: Path) -> None:
    spool = await Spool.open(small_tmpfs / "spool")
    kept: dict[str, bytes] = {}
    with pytest.raises(SpoolFullError):
        for i in range(1000):
            new = message(i, size=8192)
            kept[(await spool.store(new)).message_id] = new.content
    assert 5 < len(kept) < 1000
    assert len(spool) == len(kept)
    with pytest.raises(SpoolFullError):
        await spool.store(message(1001, size=8192))
    # The operator grows the filesystem: the same spool object works again.
    remount = await asyncio.create_subprocess_exec(
        "mount", "-o", "remount,size=2m", str(small_tmpfs)
    )
    assert await remount.wait() == 0
    new = message(2000, size=8192)
    kept[(await spool.store(new)).message_id] = new.content
    await spool.close()
    await _check_reopen(small_tmpfs / "spool", kept)


async def test_a_drained_full_spool_takes_mail_again(small_tmpfs: Path) -> None:
    """The active segment filled the disk; once every message in it is gone it is deleted
    (it stays below segment_bytes, so no rotation would ever free it). Large messages, so
    that the refused one leaves room for the removals' records."""
    spool = await Spool.open(small_tmpfs / "spool")
    stored = []
    with pytest.raises(SpoolFullError):
        for i in range(100):
            stored.append((await spool.store(message(i, size=60_000))).message_id)
    assert 2 <= len(stored) <= 4
    for message_id in stored:
        await spool.remove(message_id)
    new = message(2000, size=60_000)
    envelope = await spool.store(new)  # the first store after the drain already succeeds
    await spool.close()
    await _check_reopen(small_tmpfs / "spool", {envelope.message_id: new.content})


async def test_dsn_and_the_failures_it_reports_are_stored_together_or_not_at_all(
    tmp_path: Path,
) -> None:
    """store_reporting: one append for an attempt's DSNs (here a delay notice and a bounce)
    and the original's outcomes; a write that fails loses all of them (no DSN for
    recipients that stay pending, no notice count without its notice), and the retry keeps
    all across a reopen."""
    from relay.spool import Recipient, RecipientState

    ops = FaultyOps()
    spool = await Spool.open(tmp_path, file_ops=ops)
    first = message(0, recipients=2)
    original = await spool.store(first)
    outcomes = [
        Recipient("rcpt0@example.net", RecipientState.FAILED, 3, 0.0, "550 5.1.1 no"),
        Recipient("rcpt1@example.net", RecipientState.PENDING, 3, 9e9, "451 4.3.0 later", 1),
    ]
    bounce, delay = message(1, recipients=1), message(2, recipients=1)
    ops.write_fault = errno.EIO
    with pytest.raises(SpoolWriteError):
        await spool.store_reporting([delay, bounce], original.message_id, outcomes)
    assert [e.message_id for e in spool.scan()] == [original.message_id]
    kept = spool.get(original.message_id).recipients
    assert [r.state for r in kept] == [RecipientState.PENDING] * 2
    assert kept[1].delay_notices == 0
    ops.write_fault = None
    fsyncs = spool.statistics().fsyncs
    stored, removed = await spool.store_reporting([delay, bounce], original.message_id, outcomes)
    assert not removed, "one recipient is still pending"
    assert spool.statistics().fsyncs == fsyncs + 1, "one commit for the three records"
    assert spool.get(original.message_id).recipients[1].delay_notices == 1
    await spool.close()
    contents = {stored[0].message_id: delay.content, stored[1].message_id: bounce.content}
    await _check_reopen(tmp_path, {original.message_id: first.content, **contents})
