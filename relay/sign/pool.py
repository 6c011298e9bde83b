"""Signing off the event loop: a thread pool, one thread per core, fed in batches.

The key operation is OpenSSL's and releases the GIL (an RSA-2048 signature is about a
millisecond), so threads use every core without a process hop. The messages to sign that
one turn of the event loop produces go over together, split into one chunk per thread: the
loop pays for one hand-over and one wake-up per chunk, not per message.

A signing thread coming back from OpenSSL needs the GIL while the event loop runs Python;
by default it waits up to the interpreter's 5 ms switch interval for it, once per
signature. Measured with a busy loop on this project's VM, RSA-2048 signatures/s went from
335 and 232 at 5 ms to 548 and 524 at 0.5 ms, so the first use of the pool lowers the
process's switch interval to 0.5 ms (only a thread waiting for the GIL makes it matter).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from relay.sign.settings import Profile
from relay.sign.signer import Signed, sign_message

THREADS = max(2, os.cpu_count() or 2)
SWITCH_INTERVAL = 0.0005  # seconds; see the module docstring
Job = tuple[bytes, Sequence[Profile], bool, float]  # content, profiles, authenticated, now

_executor: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The process's signing threads (made on first use)."""
    global _executor
    if _executor is None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        _executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="dkim")
    return _executor


def sign_all(jobs: Sequence[Job]) -> list[Signed | BaseException]:
    """Sign each job (in a signing thread); a job that fails gives its exception."""
    results: list[Signed | BaseException] = []
    for content, profiles, authenticated, now in jobs:
        try:
            results.append(sign_message(content, profiles, authenticated=authenticated, now=now))
        except Exception as error:
            results.append(error)
    return results


class _Batcher:
    """One event loop's pending jobs, sent to the threads at the end of the loop's turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: list[tuple[Job, asyncio.Future[Signed]]] = []

    def add(self, job: Job) -> asyncio.Future[Signed]:
        future: asyncio.Future[Signed] = self.loop.create_future()
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append((job, future))
        return future

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        chunks = min(len(batch), THREADS)
        for index in range(chunks):
            chunk = batch[index::chunks]
            done = executor().submit(sign_all, [job for job, _ in chunk])
            done.add_done_callback(functools.partial(self._back, chunk))

    def _back(
        self,
        chunk: list[tuple[Job, asyncio.Future[Signed]]],
        done: Future[list[Signed | BaseException]],
    ) -> None:
        """In the signing thread: hand the results back to the loop (if it still runs)."""
        if not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self.loop.call_soon_threadsafe(_settle, chunk, done)


def _settle(
    chunk: list[tuple[Job, asyncio.Future[Signed]]],
    done: Future[list[Signed | BaseException]],
) -> None:
    error = done.exception()
    results: Sequence[Signed | BaseException] = (
        [error] * len(chunk) if error is not None else done.result()
    )
    for (_, future), result in zip(chunk, results, strict=True):
        if future.cancelled():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = (
    weakref.WeakKeyDictionary()
)


def sign_in_pool(
    content: bytes, profiles: Sequence[Profile], *, authenticated: bool, now: float
) -> asyncio.Future[Signed]:
    """The future of `sign_message(...)`, computed in a signing thread."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = _Batcher(loop)
    return batcher.add((content, profiles, authenticated, now))
