"""Signing off the event loop: one thread per core, pulling jobs from one shared queue.

The key operation is OpenSSL's and releases the GIL (an RSA-2048 signature is about
0.75 ms here; a Python thread keeps running while another thread is in it), so threads
use every core without a process hop. Each signing thread takes one job at a time from a
queue they all share (`queue.SimpleQueue`: C, and a thread waiting on it holds no GIL), so
no thread idles while jobs wait (a fixed share per thread left one idle while the other
finished its own).

Results go back in batches, as waking the event loop per signature costs the loop a turn
(and the threads the GIL) each time: a thread holds its results until it has BATCH, or
the oldest has waited LINGER, or no job is waiting (it would idle: nothing is held then).
A batch goes to its loop's inbox; the first results into an empty inbox schedule one
drain with `call_soon_threadsafe`, and results arriving before it runs ride along. The
loop's part is a future and a queue put per job, and one callback per batch.

A signing thread coming back from OpenSSL needs the GIL. When the event loop is running
Python (a loaded relay: parsing SMTP, spooling), the thread waits for the interpreter's
switch interval (5 ms by default) before the loop is asked to let go, once per signature,
and the threads sign at a fraction of what the cores allow. The first use of the pool
therefore lowers the process's switch interval to 0.5 ms (measured with a busy loop: see
the README's bench section). Only threads waiting for the GIL see it: a forced hand-over
at most every 0.5 ms instead of 5 between threads that both run Python (relay's other
threads wait in system calls, without the GIL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Sequence

from relay.sign.settings import Profile
from relay.sign.signer import Signed, sign_message

THREADS = max(2, os.cpu_count() or 2)
SWITCH_INTERVAL = 0.0005  # seconds; see the module docstring
BATCH = 8  # results a signing thread holds at most before handing them back
LINGER = 0.002  # seconds a result waits at most for others to go back with it

Result = Signed | BaseException


class Inbox:
    """One event loop's finished jobs, settled on that loop in batches.

    `put` is called in the signing threads; the first results into an empty inbox schedule
    one `drain` on the loop, and `drain` settles everything that arrived until it ran."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the loop's own table refers to this inbox
        self._lock = threading.Lock()
        self._results: list[tuple[asyncio.Future[Signed], Result]] = []
        self._scheduled = False
        self.wakeups = 0  # drains scheduled so far (the bench and tests read it)

    def put(self, results: list[tuple[asyncio.Future[Signed], Result]]) -> None:
        with self._lock:
            self._results += results
            if self._scheduled:
                return
            self._scheduled = True
            loop = self._loop()
            if loop is None or loop.is_closed():
                return  # nobody left to tell
            self.wakeups += 1
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        with self._lock:
            batch, self._results = self._results, []
            self._scheduled = False
        for future, result in batch:
            if future.cancelled():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


Job = tuple[bytes, Sequence[Profile], bool, float, asyncio.Future[Signed], Inbox]

_jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
_threads: list[threading.Thread] = []
_starting = threading.Lock()
_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = weakref.WeakKeyDictionary()


def start() -> None:
    """Start the process's signing threads (the first `sign_in_pool` does it)."""
    with _starting:
        if _threads:
            return
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        for index in range(THREADS):
            thread = threading.Thread(target=_sign_forever, name=f"dkim-{index}", daemon=True)
            thread.start()
            _threads.append(thread)


def _forget_threads() -> None:
    """In a forked child: the parent's threads and jobs are not there; start afresh."""
    global _jobs, _starting
    _threads.clear()
    _jobs = queue.SimpleQueue()
    _starting = threading.Lock()
    _inboxes.clear()


os.register_at_fork(after_in_child=_forget_threads)


def _sign_forever() -> None:
    """A signing thread: one job at a time, for as long as the process runs. Results are
    handed back in batches: when no job is waiting (the thread would idle anyway), when
    BATCH are held, or when the oldest has waited LINGER seconds."""
    jobs = _jobs
    take, idle, clock = jobs.get, jobs.empty, time.monotonic
    held: list[tuple[Inbox, asyncio.Future[Signed], Result]] = []
    since = 0.0
    while True:
        content, profiles, authenticated, now, future, box = take()
        result: Result
        try:
            result = sign_message(content, profiles, authenticated=authenticated, now=now)
        except Exception as error:  # the job's failure, not the thread's
            result = error
        if not held:
            since = clock()
        held.append((box, future, result))
        if len(held) >= BATCH or idle() or clock() - since >= LINGER:
            _hand_back(held)
            held = []


def _hand_back(held: list[tuple[Inbox, asyncio.Future[Signed], Result]]) -> None:
    """Each inbox's results in one `put` (one wake-up of its loop at most)."""
    first = held[0][0]
    if all(box is first for box, _, _ in held):
        first.put([(future, result) for _, future, result in held])
        return
    by_box: dict[Inbox, list[tuple[asyncio.Future[Signed], Result]]] = {}
    for box, future, result in held:
        by_box.setdefault(box, []).append((future, result))
    for box, results in by_box.items():
        box.put(results)


def inbox(loop: asyncio.AbstractEventLoop) -> Inbox:
    """`loop`'s inbox."""
    found = _inboxes.get(loop)
    if found is None:
        found = _inboxes[loop] = Inbox(loop)
    return found


def sign_in_pool(
    content: bytes, profiles: Sequence[Profile], *, authenticated: bool, now: float
) -> asyncio.Future[Signed]:
    """The future of `sign_message(...)`, computed in a signing thread."""
    if not _threads:
        start()
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Signed] = loop.create_future()
    _jobs.put((content, profiles, authenticated, now, future, inbox(loop)))
    return future
