"""The spool's writer thread runs jobs in order, off the loop, and reports each outcome."""

from __future__ import annotations

import asyncio
import threading

import pytest

from relay.spool.disk_thread import DiskThread


async def test_jobs_run_in_order_on_one_other_thread() -> None:
    disk = DiskThread("test-disk")
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * n

    results = await asyncio.gather(*(disk.run(job, n) for n in range(50)))
    assert results == [n * n for n in range(50)]
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-disk"}
    disk.stop()
    disk.join(5)


async def test_an_exception_reaches_the_waiter_and_the_thread_goes_on() -> None:
    disk = DiskThread("test-disk")

    def fail() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        await disk.run(fail)
    assert await disk.run(lambda: "still here") == "still here"
    disk.stop()
    disk.join(5)


async def test_stop_finishes_queued_jobs_then_refuses_new_ones() -> None:
    disk = DiskThread("test-disk")
    release = threading.Event()
    first = disk.run(release.wait, 5)
    second = disk.run(lambda: 2)
    disk.stop()
    release.set()
    assert await first is True
    assert await second == 2
    with pytest.raises(RuntimeError, match="stopped"):
        disk.run(lambda: 3)
    disk.join(5)
    assert not disk._thread.is_alive()
