"""Signing off the event loop: each message goes to a signing process over a pipe.

    signed = await sign_in_pool(content, profiles, authenticated=False, now=time.time())

Processes, not threads. The key operation releases the GIL, but the rest of signing is
Python (canonicalization, the field: 40-60 us a message), and a thread coming back from
OpenSSL needs the GIL the event loop holds: with two signing threads beside a loaded loop
(2 December 2026, `tests.bench.inject_cpu --dkim`), a job spent 0.57-0.70 ms in a 0.24 ms
RSA-2048 signature, waiting for the GIL, and injection signed with Ed25519 (a 30 us key
operation) ran at 0.35 of unsigned. A process has a GIL of its own: the loop's part is a
pickle and a pipe write per job and a read per batch of answers (this module), the
process does the rest (worker.py). README's bench section has the pairs measured.

One pool per event loop, PROCESSES processes, started at the first job (`python -m
relay.sign.worker`, which exits when its pipe closes: when relay stops or dies). A job
goes to the process with the fewest jobs outstanding; what is sent within one turn of the
loop goes in one write per process, and the answers come back in the batches the process
writes. The profiles go to each process once (pickled, the keys as PEM), then each job
names them by number.

A process that exits or writes garbage fails the jobs it held with SigningProcessError
(the client is answered 451 and sends again) and is replaced at the next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence

from relay.sign.frames import DONE, PROFILE_SETS, PROFILES, SIGN, FrameError, Reader, frame
from relay.sign.settings import Profile
from relay.sign.signer import Signed

log = logging.getLogger("relay.sign")

PROCESSES = max(2, os.cpu_count() or 2)
CHUNK = 1 << 20  # bytes read from a process at a time


class SigningProcessError(Exception):
    """A signing process failed or went away: the message was not signed (the client is
    told to try again)."""


Pending = tuple[asyncio.Future[Signed], bytes]  # the job's future, the unsigned message


class SigningProcess:
    """One `python -m relay.sign.worker` and the jobs it holds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "relay.sign.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to, self._from = self._proc.stdin, self._proc.stdout
        os.set_blocking(self._to.fileno(), False)
        os.set_blocking(self._from.fileno(), False)
        self.pending: dict[int, Pending] = {}
        self.known: set[int] = set()  # profile sets this process has been sent
        self.alive = True
        self._reader = Reader()
        self._queued = bytearray()
        self._flushing = False  # a flush is scheduled or a writer is registered
        loop.add_reader(self._from.fileno(), self._readable)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def send(self, data: bytes, number: int | None = None, pending: Pending | None = None) -> None:
        """Queue frames `data` (written at the end of this turn of the loop); `number`
        and `pending`: the job they carry, answered when its frame comes back."""
        if number is not None and pending is not None:
            self.pending[number] = pending
        self._queued += data
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if not self.alive:
            return
        try:
            written = os.write(self._to.fileno(), self._queued)
        except BlockingIOError:
            written = 0
        except OSError as error:
            self.stop(f"signing process {self.pid} cannot be written to: {error}")
            return
        del self._queued[:written]
        if self._queued:
            self._loop.add_writer(self._to.fileno(), self._writable)
        else:
            self._flushing = False

    def _writable(self) -> None:
        self._loop.remove_writer(self._to.fileno())
        self._flush()

    def _readable(self) -> None:
        try:
            chunk = os.read(self._from.fileno(), CHUNK)
        except BlockingIOError:
            return
        except OSError as error:
            self.stop(f"signing process {self.pid} cannot be read from: {error}")
            return
        if not chunk:
            self.stop(f"signing process {self.pid} exited ({self._proc.poll()})")
            return
        try:
            frames = self._reader.feed(chunk)
        except FrameError as error:
            self.stop(f"signing process {self.pid} sent garbage: {error}")
            return
        for kind, number, body in frames:
            job = self.pending.pop(number, None)
            if job is None or job[0].done():
                continue  # its client went away meanwhile
            future, content = job
            if kind == DONE:
                try:
                    added, signatures, unsigned, domain = pickle.loads(body)
                except Exception as error:  # a broken process, as garbage is
                    future.set_exception(SigningProcessError(f"a bad answer: {error!r}"))
                    continue
                signed = added + content if added else content
                future.set_result(Signed(signed, signatures, unsigned, domain))
            else:
                text = body.decode("utf-8", "replace")
                future.set_exception(SigningProcessError(f"signing failed: {text}"))

    def stop(self, reason: str | None = None) -> None:
        """End the process; its outstanding jobs fail with `reason` (or as stopped)."""
        if not self.alive:
            return
        self.alive = False
        if reason is not None:
            log.error(
                "%s; %d messages not signed, their clients will retry", reason, len(self.pending)
            )
        with contextlib.suppress(Exception):  # the loop may be closed
            self._loop.remove_reader(self._from.fileno())
        with contextlib.suppress(Exception):
            self._loop.remove_writer(self._to.fileno())
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(SigningProcessError(reason or "relay is stopping"))
        self.pending.clear()
        self.forget()
        with contextlib.suppress(OSError):
            self._proc.kill()
        threading.Thread(target=self._proc.wait, name="dkim-reaper", daemon=True).start()

    def forget(self) -> None:
        """Close this side's pipes (in a forked child, which does not own the process)."""
        self.alive = False
        for pipe in (self._to, self._from):
            with contextlib.suppress(OSError):
                pipe.close()


class Pool:
    """One event loop's signing processes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, processes: int = PROCESSES) -> None:
        self.loop = loop
        self.processes: list[SigningProcess | None] = [None] * processes
        self._jobs = itertools.count(1)
        self._sets = itertools.count(1)
        # id(profiles) -> (the profiles, their number, their PROFILES frame)
        self._profiles: dict[int, tuple[Sequence[Profile], int, bytes]] = {}

    def _process(self) -> SigningProcess:
        """The live process with the fewest jobs outstanding (started where missing)."""
        best: SigningProcess | None = None
        for index, process in enumerate(self.processes):
            if process is None or not process.alive:
                process = self.processes[index] = SigningProcess(self.loop)
            if best is None or len(process.pending) < len(best.pending):
                best = process
        assert best is not None
        return best

    def _profile_set(self, profiles: Sequence[Profile]) -> tuple[int, bytes]:
        entry = self._profiles.get(id(profiles))
        if entry is None or entry[0] is not profiles:
            if len(self._profiles) >= PROFILE_SETS:  # a reload makes a new set
                self._profiles.clear()
                for process in self.processes:
                    if process is not None:
                        process.known.clear()
            number = next(self._sets)
            body = pickle.dumps(tuple(profiles), pickle.HIGHEST_PROTOCOL)
            entry = self._profiles[id(profiles)] = (profiles, number, frame(PROFILES, number, body))
        return entry[1], entry[2]

    def sign(
        self, content: bytes, profiles: Sequence[Profile], authenticated: bool, now: float
    ) -> asyncio.Future[Signed]:
        future: asyncio.Future[Signed] = self.loop.create_future()
        try:
            number, profile_frame = self._profile_set(profiles)
            process = self._process()
        except OSError as error:  # no process could start (out of fds, memory)
            future.set_exception(SigningProcessError(f"no signing process: {error}"))
            return future
        if number not in process.known:
            process.known.add(number)
            process.send(profile_frame)
        job = next(self._jobs)
        body = pickle.dumps((number, authenticated, now, content), pickle.HIGHEST_PROTOCOL)
        process.send(frame(SIGN, job, body), job, (future, content))
        return future

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p is not None and p.alive]

    def close(self) -> None:
        for process in self.processes:
            if process is not None:
                process.stop()


_pools: dict[asyncio.AbstractEventLoop, Pool] = {}


def pool_for(loop: asyncio.AbstractEventLoop) -> Pool:
    """`loop`'s pool (the pools of loops that have closed are stopped here)."""
    found = _pools.get(loop)
    if found is None:
        for old in [old for old in _pools if old.is_closed()]:
            _pools.pop(old).close()
        found = _pools[loop] = Pool(loop)
    return found


def _forget_pools() -> None:
    """In a forked child: the parent's processes are the parent's; start afresh."""
    for found in _pools.values():
        for process in found.processes:
            if process is not None:
                process.forget()
    _pools.clear()


os.register_at_fork(after_in_child=_forget_pools)


def sign_in_pool(
    content: bytes, profiles: Sequence[Profile], *, authenticated: bool, now: float
) -> asyncio.Future[Signed]:
    """The future of `sign_message(...)`, computed in a signing process."""
    return pool_for(asyncio.get_running_loop()).sign(content, profiles, authenticated, now)
