"""The spool's writer thread: jobs in on a queue, results back to the event loop.

What a one-thread ThreadPoolExecutor with run_in_executor does, for a job per commit batch,
without its per-job locks, semaphore and pair of chained futures (about 8% of an injection
worker's event-loop time went to ThreadPoolExecutor.submit alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any], asyncio.AbstractEventLoop]


class DiskThread:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self._stopped = False

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `function(*args)` on the thread, after every job submitted before it."""
        if self._stopped:
            raise RuntimeError("the spool's disk thread is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((function, args, future, loop))
        return future

    def stop(self) -> None:
        """No more jobs; the thread ends once it has done those already queued."""
        if not self._stopped:
            self._stopped = True
            self._jobs.put(None)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            function, args, future, loop = job
            try:
                result = function(*args)
            except BaseException as exc:  # delivered to the waiter, whatever it is
                outcome: tuple[Callable[..., None], Any] = (_fail, exc)
            else:
                outcome = (_succeed, result)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(outcome[0], future, outcome[1])


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
