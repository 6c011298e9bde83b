"""The benchmark's HTTP injector: S keep-alive clients POSTing to /api/v1/messages one
message after another (the same 2 KB messages as tests/bench/inject.py, as `content`).

    python -m tests.bench.inject_http --url http://127.0.0.1:P --token-file F \
        --messages N --sessions S --size BYTES --rcpts R --out FILE [--seconds T]

Writes the same JSON summary as inject.py: per accepted message its token number, the
time the request was sent and the time the 201 came back. Bounded by --messages and
--seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from tests.bench.inject import make_message


class HttpInjector:
    def __init__(self, args: argparse.Namespace, token: str) -> None:
        self.args = args
        self.token = token
        self.next = args.first
        self.last = args.first + args.messages
        self.deadline = time.monotonic() + args.seconds
        self.accepted: list[tuple[int, float, float]] = []
        self.refused: dict[str, int] = {}
        self.errors: list[str] = []

    def take(self) -> int | None:
        if self.next >= self.last or time.monotonic() > self.deadline:
            return None
        seq = self.next
        self.next += 1
        return seq

    async def client(self, session: aiohttp.ClientSession) -> None:
        a = self.args
        url = a.url.rstrip("/") + "/api/v1/messages"
        headers = {"Authorization": f"Bearer {self.token}"}
        failures = 0
        while failures < 20 and (seq := self.take()) is not None:
            content = make_message(seq, a.run, a.size, a.rcpts)[:-3].decode()
            body = {
                "from": "bench@inject.bench.test",
                "to": [f"r{i}-{seq}@bench.example" for i in range(a.rcpts)],
                "content": content,
            }
            sent = time.monotonic()
            try:
                async with session.post(url, json=body, headers=headers) as reply:
                    answer = await reply.read()
                    if reply.status == 201:
                        self.accepted.append((seq, sent, time.monotonic()))
                        continue
                    key = f"{reply.status} {answer[:60].decode(errors='replace')}"
                    self.refused[key] = self.refused.get(key, 0) + 1
            except (aiohttp.ClientError, TimeoutError) as err:
                failures += 1
                self.errors.append(f"{type(err).__name__}: {err}")

    async def run(self) -> dict[str, object]:
        connector = aiohttp.TCPConnector(limit=self.args.sessions)
        timeout = aiohttp.ClientTimeout(total=self.args.reply_timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            start = time.monotonic()
            await asyncio.gather(*(self.client(session) for _ in range(self.args.sessions)))
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
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", required=True, help="a file with the bare token")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rcpts", type=int, default=1)
    parser.add_argument("--run", default="bench")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--reply-timeout", type=float, default=60.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.token_file) as f:
        token = f.read().strip()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        runner = asyncio.Runner()
    with runner:
        result = runner.run(HttpInjector(args, token).run())
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
