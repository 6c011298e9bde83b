"""Shared pieces of the reliability suite: relay as a real `relay serve` process that can be
SIGKILLed and restarted, an injector that keeps account of every message it sent, and the
ledger that checks what came out against what went in.

    relay = RelayProcess(tmp_path, routes={"d0.test": "127.0.0.41:2525"}, extra="...")
    await relay.start()                      # waits until the admin API lists a listener
    relay.kill(); await relay.start()        # SIGKILL, then the same spool and config again
    injector = Injector(relay.port, rng, domains=["d0.test"])
    await injector.run(count=300, sessions=8, deadline=...)
    injector.attempted / injector.accepted   # token -> bytes sent; accepted: answered 250
    await relay.spool_messages()             # from GET /api/v1/summary
    leftovers(relay.spoolbase)               # *.tmp files under the spool

Every message carries a unique `X-Token:` header (also in its Subject and Message-ID) so a
sink, a DSN or the spool can name it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import aiosmtplib

from tests.integration.relay_harness import free_port
from tests.reliability.chaos_sink import Delivery

REPO = Path(__file__).parents[2]
TOKEN = "reliability-read-token-0123456789abcdef"  # the admin API's read token
SENDER = "s@sender.test"  # DSNs come back to sender.test


def message(token: str, lines: int) -> bytes:
    body = "".join(
        f"{token} line {i:04d} .............................................\r\n"
        for i in range(lines)
    )
    return (
        f"From: {SENDER}\r\nTo: r@dest.test\r\nSubject: {token}\r\n"
        f"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
        f"Message-ID: <{token}@sender.test>\r\nX-Token: {token}\r\n\r\n{body}"
    ).encode()


def leftovers(spoolbase: Path) -> list[Path]:
    """Temporary files under the spool (a segment or state file being written, a segment
    being deleted)."""
    return [p for p in spoolbase.rglob("*") if p.name.endswith((".tmp", ".dead"))]


class RelayProcess:
    """`relay serve` on a config of its own: listener, admin API (read token), spool, log,
    every domain of `routes` sent to its gateway, `extra` options appended (global scope,
    stanzas)."""

    def __init__(
        self, directory: Path, routes: dict[str, str], extra: str = "", domain_options: str = ""
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.admin_port = free_port()
        self.spoolbase = directory / "spool"
        self.log = directory / "relay.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills: list[float] = []  # time.monotonic() of each SIGKILL
        tokens = directory / "admin-tokens"
        tokens.write_text(f"reliability:read:{TOKEN}\n")
        nowhere = directory / "resolv.conf"
        nowhere.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        domains = "".join(
            f'domain "{name}" {{ gateway = "{gateway}" {domain_options} }}\n'
            for name, gateway in routes.items()
        )
        self.config = directory / "relay.conf"
        self.config.write_text(
            f'hostname = "relay.test"\n'
            f'spoolbase = "{self.spoolbase}"\n'
            f'event_log = "{directory / "events.jsonl"}"\n'
            f"shutdown_timeout = 5\n"
            f'admin_listen = "127.0.0.1:{self.admin_port}"\n'
            f'admin_token_file = "{tokens}"\n'
            f'resolv_conf = "{nowhere}"\ndns_port = 9\n'
            f"{extra}\n"
            f"esmtp_listener {{\n"
            f'  relay_hosts = ( "127.0.0.0/8" )\n'
            f'  listen "127.0.0.1:{self.port}" {{ }}\n'
            f"}}\n{domains}"
        )

    async def start(self, within: float = 30.0) -> None:
        assert self.process is None or self.process.poll() is not None
        self.process = self._spawn()
        self.starts += 1
        deadline = time.monotonic() + within
        while True:
            summary = await self.summary()
            if summary is not None and summary["listeners"]:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"relay did not start:\n{self.log.read_text()[-4000:]}")
            await asyncio.sleep(0.05)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            out.write(f"---- start {self.starts}\n".encode())
            out.flush()
            return subprocess.Popen(
                [sys.executable, "-m", "relay.cli", "serve", "-c", str(self.config)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self) -> None:
        assert self.process is not None
        self.kills.append(time.monotonic())
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def stop(self) -> int:
        """SIGTERM and wait: relay drains its sessions and exits with the spool consistent."""
        if self.process is None or self.process.poll() is not None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("relay did not stop within 30 s of SIGTERM") from None

    async def summary(self) -> dict[str, object] | None:
        url = f"http://127.0.0.1:{self.admin_port}/api/v1/summary"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with (
                aiohttp.ClientSession(headers=headers) as session,
                session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as reply,
            ):
                if reply.status != 200:
                    return None
                answer: dict[str, object] = await reply.json()
                return answer
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def spool_messages(self) -> int | None:
        summary = await self.summary()
        if summary is None or not isinstance(summary.get("spool"), dict):
            return None
        spool = summary["spool"]
        assert isinstance(spool, dict)
        return int(spool["messages"])


@dataclass
class Injector:
    """Parallel SMTP sessions into relay; every message gets a fresh token. A message
    whose 250 did not arrive (relay killed, 4xx) is `attempted` only: relay may still
    deliver it (it may have been stored just before the kill), never must."""

    port: int
    rng: random.Random
    domains: list[str]
    attempted: dict[str, bytes] = field(default_factory=dict)
    accepted: dict[str, bytes] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)  # reply code or error class
    _sequence: int = 0

    def _next(self, session: int) -> tuple[str, str, bytes]:
        self._sequence += 1
        token = f"t{self._sequence:06d}s{session}r{self.rng.randrange(16**8):08x}"
        domain = self.rng.choice(self.domains)
        data = message(token, self.rng.randint(3, 120))
        self.attempted[token] = data
        return token, f"r{self._sequence}@{domain}", data

    async def run(self, count: int, sessions: int, deadline: float) -> None:
        await asyncio.gather(*(self._session(s, count, deadline) for s in range(sessions)))

    async def _session(self, session: int, count: int, deadline: float) -> None:
        while len(self.accepted) < count and time.monotonic() < deadline:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, timeout=10)
            try:
                await client.connect()
                while len(self.accepted) < count and time.monotonic() < deadline:
                    token, recipient, data = self._next(session)
                    try:
                        await client.sendmail(SENDER, [recipient], data)
                    except aiosmtplib.SMTPResponseException as refused:
                        self.refusals[str(refused.code)] += 1
                        if refused.code == 421 or isinstance(
                            refused, aiosmtplib.SMTPServerDisconnected
                        ):
                            break
                        continue
                    self.accepted[token] = data
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as lost:
                self.refusals[type(lost).__name__] += 1
                await asyncio.sleep(0.05)  # relay is down: a new session once it is back
            finally:
                with contextlib.suppress(Exception):
                    client.close()


@dataclass
class Verdict:
    """What came out against what went in (see `judge`)."""

    delivered: dict[str, list[Delivery]]
    bounced: set[str]
    lost: set[str]  # answered 250, neither delivered nor bounced
    unknown: list[Delivery]  # delivered but never injected
    altered: list[str]  # delivered with other bytes than were sent
    duplicates: dict[str, int]  # token -> extra deliveries
    unexplained: dict[str, int]  # duplicates neither in flight at a kill nor answered late
    late: set[str]  # not answered 250 (the kill came first), delivered anyway
    gave_up: dict[str, int] = field(default_factory=dict)  # duplicates answered too late


TRACE = b"Received: "
IN_FLIGHT = 3.0  # s: a delivery this long before a kill may not have been recorded yet


def _trace_then(content: bytes, sent: bytes) -> bool:
    """`content` is relay's one Received: header (folded lines and all), then `sent`."""
    if not content.endswith(sent):
        return False
    prefix = content[: len(content) - len(sent)]
    lines = prefix.split(b"\r\n")
    return (
        prefix.startswith(TRACE)
        and prefix.endswith(b"\r\n")
        and all(line[:1] in (b" ", b"\t") for line in lines[1:-1])
    )


def _in_flight(delivery: Delivery, kill: float) -> bool:
    """Was this delivery under way when relay was killed? Its connection was opened by the
    process that was killed, and its 250 went out shortly before the kill (relay had no
    time to record it) or after it (relay's data was in the socket buffers when it died:
    the receiver finished reading and answered a dead peer)."""
    return delivery.opened <= kill and delivery.at >= kill - IN_FLIGHT


def _answered_late(delivery: Delivery, reply_timeout: float) -> bool:
    """Did the receiver answer the final dot only after relay had stopped waiting? Relay
    wrote the dot before the sink read it and read the 250 after the sink sent it, so
    relay waited at least `at - dot`: at or over its timeout it gave up and will try again
    (the duplicate RFC 1047 describes). The chaos sink's stalls at the dot are well
    short of the timeout; a busy test process can still stretch one past it."""
    return delivery.at - delivery.dot >= reply_timeout


def judge(
    attempted: dict[str, bytes],
    accepted: dict[str, bytes],
    deliveries: Iterable[Delivery],
    dsns: Iterable[Delivery],
    kills: list[float],
    reply_timeout: float = math.inf,
) -> Verdict:
    delivered: dict[str, list[Delivery]] = {}
    unknown: list[Delivery] = []
    altered: list[str] = []
    for delivery in deliveries:
        if delivery.token not in attempted:
            unknown.append(delivery)
            continue
        delivered.setdefault(delivery.token, []).append(delivery)
        if not _trace_then(delivery.content, attempted[delivery.token]):
            altered.append(delivery.token)
    bounced = {dsn.token for dsn in dsns if dsn.token in attempted}
    unknown += [dsn for dsn in dsns if dsn.token not in attempted]
    duplicates: dict[str, int] = {}
    unexplained: dict[str, int] = {}
    gave_up: dict[str, int] = {}
    for token, copies in delivered.items():
        # Every delivery but the last (all of them, when a DSN followed) went unrecorded.
        unrecorded = sorted(copies, key=lambda d: d.at)[: None if token in bounced else -1]
        if not unrecorded:
            continue
        duplicates[token] = len(unrecorded)
        late_copies = sum(_answered_late(d, reply_timeout) for d in unrecorded)
        if late_copies:
            gave_up[token] = late_copies
        if not all(
            _answered_late(d, reply_timeout) or any(_in_flight(d, k) for k in kills)
            for d in unrecorded
        ):
            unexplained[token] = len(unrecorded)
    lost = set(accepted) - set(delivered) - bounced
    late = (set(delivered) | bounced) - set(accepted)
    return Verdict(
        delivered, bounced, lost, unknown, altered, duplicates, unexplained, late, gave_up
    )


def figures(
    title: str,
    seed: int,
    injector: Injector,
    verdict: Verdict,
    kills: int,
    faults: Counter[str],
    extra: dict[str, object] | None = None,
    elapsed: float = 0.0,
) -> str:
    """The run's figures, as printed at the end and quoted in the README."""
    gave_up = len(verdict.gave_up)
    gave_up_text = f" or answered after relay's timeout ({gave_up})" if gave_up else ""
    lines = [
        f"== {title} (seed {seed}, {elapsed:.0f} s)",
        f"messages: {len(injector.accepted)} answered 250 of {len(injector.attempted)} sent; "
        f"delivered {len(verdict.delivered)}, bounced with a DSN {len(verdict.bounced)}, "
        f"delivered without their 250 (kill came first) {len(verdict.late)}",
        f"kills (SIGKILL + restart): {kills}",
        "faults injected: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(faults.items()))
        + f" (total {sum(faults.values())})",
        f"duplicates: {sum(verdict.duplicates.values())} "
        f"({len(verdict.duplicates)} messages, all in flight at a kill{gave_up_text}: "
        f"{'yes' if not verdict.unexplained else 'NO'})",
        f"losses: {len(verdict.lost)}; unknown deliveries: {len(verdict.unknown)}; "
        f"altered: {len(verdict.altered)}",
        "injection refusals/errors: "
        + ", ".join(f"{k} {n}" for k, n in sorted(injector.refusals.items())),
    ]
    lines += [f"{key}: {value}" for key, value in (extra or {}).items()]
    return "\n".join(lines)
