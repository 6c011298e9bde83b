"""CPU cost of SMTP injection alone: relay.inject in-process, clients in another process.

    .venv/bin/python -m tests.bench.inject_cpu [--messages N] [--sessions S] [--size BYTES]
        [--fsync on|off|both] [--client auto|smtp-source|python] [--connect-per-message]
        [--repeat R] [--profile FILE.pstats] [--dkim rsa|ed25519]

Starts `start_listeners` on 127.0.0.1:0 with a real `Spool` (in a temporary directory,
fsync on and/or off) under uvloop, then drives it from a subprocess: Postfix's
`smtp-source -d -s S -m N -l BYTES` when installed (`-d`: many messages per session, as in
`make bench` scenario (a)), else a small raw-socket client (this file with `--client-only`).
Reports accepted msgs/s and CPU ms per accepted message: the whole server process
(`time.process_time`, spool threads included) and the event-loop thread alone
(`time.thread_time`, i.e. what injection costs). Client CPU is not counted.
Logging is set up as `relay serve` does (INFO, aiosmtpd's "mail.log" at WARNING), written to
/dev/null unless `--log FILE`; `--no-log` leaves logging unconfigured.
Bounded: each run stops after N messages or `--seconds` (default 60), whichever is first.
`--profile` wraps the measured part in cProfile (the loop thread only) and dumps stats.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMTP_SOURCE = "/usr/sbin/smtp-source"
FILLER = b"x" * 74 + b"\r\n"


@dataclasses.dataclass
class Result:
    label: str
    accepted: int
    wall: float
    process_cpu: float
    loop_cpu: float
    system_cpu: float

    def row(self) -> str:
        n = max(self.accepted, 1)
        return (
            f"{self.label:<28} {self.accepted:>7} msgs  {self.accepted / self.wall:>8.0f} msgs/s"
            f"  cpu {1000 * self.process_cpu / n:6.3f} ms/msg"
            f"  loop {1000 * self.loop_cpu / n:6.3f} ms/msg"
            f"  (kernel {1000 * self.system_cpu / n:5.3f})"
        )


class CountingStore:
    """The real spool, counting what it accepted."""

    def __init__(self, spool: object) -> None:
        self.spool = spool
        self.stored = 0
        self.done: asyncio.Event = asyncio.Event()
        self.target = 0

    async def store(self, message: object, /) -> object:
        envelope = await self.spool.store(message)  # type: ignore[attr-defined]
        self.stored += 1
        if self.target and self.stored >= self.target:
            self.done.set()
        return envelope


def client_command(args: argparse.Namespace, port: int, messages: int) -> list[str]:
    use_source = args.client == "smtp-source" or (
        args.client == "auto" and os.path.exists(SMTP_SOURCE)
    )
    if use_source:
        cmd = [SMTP_SOURCE, "-s", str(args.sessions), "-m", str(messages), "-l", str(args.size)]
        cmd += ["-f", "bench@inject.bench.test", "-t", "rcpt@bench.example"]
        if not args.connect_per_message:
            cmd.append("-d")
        return [*cmd, f"127.0.0.1:{port}"]
    return [
        sys.executable,
        "-m",
        "tests.bench.inject_cpu",
        "--client-only",
        str(port),
        "--messages",
        str(messages),
        "--sessions",
        str(args.sessions),
        "--size",
        str(args.size),
        *(["--connect-per-message"] if args.connect_per_message else []),
    ]


def dkim_settings(kind: str | None, directory: Path) -> object:
    """--dkim rsa|ed25519: every message signed (relaxed/relaxed) before it is spooled."""
    if kind is None:
        return None
    from relay.sign.settings import DkimSettings
    from tests.bench.dkim_sign import profile

    return DkimSettings((profile(kind, directory),))


async def one_run(
    args: argparse.Namespace, fsync: bool, messages: int, profile: cProfile.Profile | None
) -> Result:
    from relay.inject import InjectSettings, ListenerSettings, start_listeners
    from relay.inject.settings import parse_network
    from relay.spool.store import Spool

    directory = tempfile.mkdtemp(prefix="inject-cpu-", dir=args.dir)
    try:
        spool = await Spool.open(directory, fsync=fsync)
        store = CountingStore(spool)
        settings = InjectSettings(
            listeners=(ListenerSettings("127.0.0.1:0"),),
            hostname="relay.bench.test",
            relay_hosts=(parse_network("127.0.0.0/8"),),
            dkim=dkim_settings(args.dkim, Path(directory)),
        )
        listeners = await start_listeners(settings, store)  # type: ignore[arg-type]
        port = listeners.bound[0].sockets[0][1]
        store.target = messages
        proc = await asyncio.create_subprocess_exec(
            *client_command(args, port, messages),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wall0, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
        sys0 = os.times().system
        if profile is not None:
            profile.enable()
        waiters = [asyncio.ensure_future(store.done.wait()), asyncio.ensure_future(proc.wait())]
        await asyncio.wait(waiters, timeout=args.seconds, return_when=asyncio.FIRST_COMPLETED)
        if profile is not None:
            profile.disable()
        wall = time.perf_counter() - wall0
        result = Result(
            f"fsync={'on' if fsync else 'off'}",
            store.stored,
            wall,
            time.process_time() - cpu0,
            time.thread_time() - loop0,
            os.times().system - sys0,
        )
        for waiter in waiters:
            waiter.cancel()
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
        assert proc.stderr is not None
        errors = (await proc.stderr.read()).decode(errors="replace").strip()
        if errors:
            print(f"client: {errors[:400]}", file=sys.stderr)
        await listeners.close(grace=1.0)
        await spool.close()
        return result
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def configure_logging(args: argparse.Namespace) -> None:
    import logging

    if args.no_log:
        return
    logging.basicConfig(
        level=logging.INFO,
        stream=open(args.log or os.devnull, "a"),  # noqa: SIM115 - lives as long as the process
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def serve(args: argparse.Namespace) -> int:
    import uvloop

    configure_logging(args)

    modes = {"on": [True], "off": [False], "both": [False, True]}[args.fsync]
    profile = cProfile.Profile() if args.profile else None
    client = "smtp-source" if args.client != "python" and os.path.exists(SMTP_SOURCE) else "python"
    print(
        f"inject_cpu: {args.messages} msgs x {args.size} B, {args.sessions} sessions, "
        f"client={client}{' (connect per message)' if args.connect_per_message else ''}",
        flush=True,
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(one_run(args, False, min(args.messages, 500), None))  # warm-up
        for _ in range(args.repeat):
            for fsync in modes:
                result = runner.run(one_run(args, fsync, args.messages, profile))
                print(result.row(), flush=True)
    if profile is not None:
        profile.dump_stats(args.profile)
        print(f"profile written to {args.profile}")
    return 0


# --- the fallback client: raw sockets, blocking, one thread per session -------------------


def make_message(seq: int, size: int) -> bytes:
    head = (
        f"From: <bench@inject.bench.test>\r\nTo: <rcpt@bench.example>\r\n"
        f"Subject: bench {seq}\r\nMessage-ID: <{seq}@inject.bench.test>\r\n\r\n"
    ).encode()
    body_len = max(2, size - len(head))
    body = (FILLER * (body_len // len(FILLER) + 1))[: body_len - 2] + b"\r\n"
    return head + body + b".\r\n"


def client_only(port: int, messages: int, sessions: int, size: int, reconnect: bool) -> int:
    import threading

    lock = threading.Lock()
    counter = [0]
    failures: list[str] = []

    def take() -> int | None:
        with lock:
            if counter[0] >= messages:
                return None
            counter[0] += 1
            return counter[0]

    def connect() -> tuple[socket.socket, object]:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")
        expect(f, b"2")
        sock.sendall(b"EHLO client.bench.test\r\n")
        expect(f, b"2")
        return sock, f

    def expect(f: object, code: bytes) -> None:
        while True:
            line = f.readline()  # type: ignore[attr-defined]
            if not line.startswith(code):
                raise RuntimeError(f"unexpected reply {line!r}")
            if line[3:4] != b"-":
                return

    def session() -> None:
        try:
            sock, f = connect()
            while (seq := take()) is not None:
                sock.sendall(b"MAIL FROM:<bench@inject.bench.test>\r\n")
                expect(f, b"2")
                sock.sendall(b"RCPT TO:<rcpt@bench.example>\r\n")
                expect(f, b"2")
                sock.sendall(b"DATA\r\n")
                expect(f, b"3")
                sock.sendall(make_message(seq, size))
                expect(f, b"2")
                if reconnect:
                    sock.sendall(b"QUIT\r\n")
                    sock.close()
                    sock, f = connect()
            sock.sendall(b"QUIT\r\n")
            sock.close()
        except (OSError, RuntimeError) as error:
            failures.append(repr(error))

    threads = [threading.Thread(target=session) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for failure in failures[:5]:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--fsync", choices=("on", "off", "both"), default="both")
    parser.add_argument("--client", choices=("auto", "smtp-source", "python"), default="auto")
    parser.add_argument("--connect-per-message", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--dir", default=None, help="where the temporary spools go")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--dkim", choices=("rsa", "ed25519"), default=None, help="sign each")
    parser.add_argument("--log", default=None, help="log file (default: /dev/null)")
    parser.add_argument("--no-log", action="store_true", help="leave logging unconfigured")
    parser.add_argument("--client-only", type=int, default=None, metavar="PORT")
    args = parser.parse_args(argv)
    if args.client_only is not None:
        return client_only(
            args.client_only, args.messages, args.sessions, args.size, args.connect_per_message
        )
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
