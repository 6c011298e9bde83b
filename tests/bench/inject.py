"""The benchmark's Python injector: N parallel SMTP sessions, one message after another,
no pipelining (the same dialogue smtp-source has), each message carrying a unique
`X-Bench-Token:` header.

    python -m tests.bench.inject --port P --messages N --sessions S --size BYTES \
        --rcpts R --out FILE [--seconds T] [--first K] [--per-connection 1] [--starttls]

Writes a JSON summary to `--out`: start/end (time.monotonic), and per accepted message
its token number, the time the final "." was written and the time the 250 came back.
Bounded by `--messages` and by `--seconds` (it stops starting new messages at the deadline).
`--per-connection K` sends at most K messages per SMTP session, then QUIT and a new
connection (1: a connection per message, as smtp-source without -d and most application
mailers); 0 (the default) keeps each session open for as many as it gets. `--starttls`
upgrades every session with STARTTLS after the EHLO (no certificate check, no session
resumption: each connection a full handshake, as a mailer that connects once per message),
then says EHLO again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import time

FILLER = b"x" * 74 + b"\r\n"


def make_message(seq: int, run: str, size: int, rcpts: int) -> bytes:
    head = (
        f"From: <bench@inject.bench.test>\r\n"
        f"To: <r0-{seq}@bench.example>\r\n"
        f"Subject: bench message {seq}\r\n"
        f"Message-ID: <{seq}.{run}@inject.bench.test>\r\n"
        f"X-Bench-Token: {run}-{seq}\r\n"
        f"\r\n"
    ).encode()
    body_len = max(0, size - len(head) - 2)
    body = FILLER * (body_len // len(FILLER) + 1)
    body = body[:body_len]
    if not body.endswith(b"\r\n"):
        body = body[:-2] + b"\r\n" if len(body) >= 2 else b"\r\n"
    return head + body + b".\r\n"


class Injector:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.next = args.first
        self.last = args.first + args.messages
        self.deadline = time.monotonic() + args.seconds
        self.accepted: list[tuple[int, float, float]] = []
        self.refused: dict[str, int] = {}
        self.errors: list[str] = []
        self.tls: ssl.SSLContext | None = None
        if args.starttls:
            self.tls = ssl.create_default_context()
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE

    def take(self) -> int | None:
        if self.next >= self.last or time.monotonic() > self.deadline:
            return None
        seq = self.next
        self.next += 1
        return seq

    async def session(self) -> None:
        failures = 0
        while failures < 20:
            try:
                if await self.one_connection() and self.next >= self.last:
                    return
                if time.monotonic() > self.deadline:
                    return
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError) as err:
                failures += 1
                self.errors.append(repr(err))
                await asyncio.sleep(0.05)

    async def one_connection(self) -> bool:
        a = self.args
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(a.host, a.port), a.reply_timeout
        )

        # One watchdog per connection instead of a wait_for per reply (which costs a task
        # and a timer each, a third of this injector's CPU): a connection that makes no
        # progress for --reply-timeout seconds is aborted, and the read fails.
        loop = asyncio.get_running_loop()
        progress = [0, -1]  # replies seen, replies seen at the last check

        def watchdog() -> None:
            nonlocal timer
            if progress[0] == progress[1]:
                writer.transport.abort()
                return
            progress[1] = progress[0]
            timer = loop.call_later(a.reply_timeout, watchdog)

        timer = loop.call_later(a.reply_timeout, watchdog)

        async def reply() -> tuple[int, bytes]:
            while True:
                line = await reader.readuntil(b"\n")
                if line[3:4] != b"-":
                    progress[0] += 1
                    return int(line[:3]), line

        try:
            await reply()
            writer.write(b"EHLO inject.bench.test\r\n")
            await reply()
            if self.tls is not None:
                writer.write(b"STARTTLS\r\n")
                code, line = await reply()
                if code != 220:
                    raise OSError(f"STARTTLS refused: {line!r}")
                await writer.start_tls(self.tls)
                writer.write(b"EHLO inject.bench.test\r\n")
                await reply()
            rcpt_lines = [b"RCPT TO:<r%d-%%d@bench.example>\r\n" % i for i in range(a.rcpts)]
            sent_here = 0
            while (a.per_connection == 0 or sent_here < a.per_connection) and (
                seq := self.take()
            ) is not None:
                sent_here += 1
                message = make_message(seq, a.run, a.size, a.rcpts)
                writer.write(b"MAIL FROM:<bench@inject.bench.test>\r\n")
                code, line = await reply()
                ok = code == 250
                if ok:
                    for r in rcpt_lines:
                        writer.write(r % seq)
                        code, line = await reply()
                        ok = ok and code == 250
                if ok:
                    writer.write(b"DATA\r\n")
                    code, line = await reply()
                    ok = code == 354
                if ok:
                    writer.write(message)
                    sent = time.monotonic()
                    code, line = await reply()
                    if code == 250:
                        self.accepted.append((seq, sent, time.monotonic()))
                        continue
                key = line[:40].decode("ascii", "replace").strip()
                self.refused[key] = self.refused.get(key, 0) + 1
                writer.write(b"RSET\r\n")
                await reply()
            writer.write(b"QUIT\r\n")
            # the 221: the server is done with the connection (the sink, once it has them all,
            # closes without one)
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await reply()
            return True
        finally:
            timer.cancel()
            writer.close()

    async def run(self) -> dict[str, object]:
        start = time.monotonic()
        await asyncio.gather(*(self.session() for _ in range(self.args.sessions)))
        end = time.monotonic()
        return {
            "start": start,
            "end": end,
            "accepted": self.accepted,
            "refused": self.refused,
            "errors": self.errors[:20],
            "unsent": self.last - self.next,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rcpts", type=int, default=1)
    parser.add_argument("--run", default="bench")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--per-connection", type=int, default=0)
    parser.add_argument("--starttls", action="store_true")
    parser.add_argument("--reply-timeout", type=float, default=60.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        runner = asyncio.Runner()
    with runner:
        result = runner.run(Injector(args).run())
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
