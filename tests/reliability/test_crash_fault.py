"""The crash-and-fault test: mail answered 250 is delivered or bounced, whatever happens.

N messages with unique tokens go into a real `relay serve` over parallel sessions while
the receiving MTAs misbehave at random (chaos_sink.py: 421 greetings, 4xx/5xx to any
command, connections dropped mid-DATA, final dots never answered, multi-second stalls,
garbage replies, failed TLS handshakes) and relay is SIGKILLed K times at random moments
and restarted each time. Retries are short, so the queue drains within the test. Then:
every message answered 250 was delivered (byte-identical after relay's Received: header)
or bounced with a DSN naming it; nothing was delivered that was not sent; a message
delivered twice was in flight at a kill; no temporary file is left; the spool is empty.
With a `cluster` stanza the same holds while the real redis-server is killed and
restarted too.

The seed is printed (RELAY_CRASH_SEED=... repeats a run). `make soak` runs the long
version: RELAY_SOAK_MESSAGES (default 5000), RELAY_SOAK_KILLS (20), RELAY_SOAK_SECONDS
(900, the bound of the whole run).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from relay.spool import Spool
from tests.reliability.chaos_sink import ChaosSink, Delivery
from tests.reliability.harness import Injector, RelayProcess, Verdict, figures, judge, leftovers
from tests.support.redis_server import RedisServer
from tests.support.sinks import server_tls_context

SINKS = 4  # one per destination domain, on 127.0.0.41-44; DSNs go to a clean one on .45
BODY_TIMEOUT = 3.0  # s: how long relay waits for the reply to the final dot

RETRIES = f"""
retry_interval = 0.5
max_retry_interval = 2
connect_timeout = 3
ehlo_timeout = 3
mailfrom_timeout = 3
rcptto_timeout = 3
body_timeout = {BODY_TIMEOUT:g}
idle_timeout = 1
tls = ifavailable
tls_verify = ca
"""


def cluster_stanza(url: str) -> str:
    return f"""
cluster {{
  redis_url = "{url}"
  node_name = "crash"
  key_prefix = "crash:"
  heartbeat_interval = 0.2
  lease_period = 1
  redis_timeout = 0.3
}}
"""


async def crash_run(
    directory: Path,
    *,
    messages: int,
    kills: int,
    seconds: float,
    seed: int,
    redis: RedisServer | None = None,
    sessions: int = 8,
) -> tuple[str, Callable[[], None]]:
    """Run the test; return its figures and the assertions to make (after printing)."""
    started = time.monotonic()
    rng = random.Random(seed)
    ca, stranger = trustme.CA(), trustme.CA()
    (directory / "ca.pem").write_bytes(ca.cert_pem.bytes())
    trusted = server_tls_context(ca.issue_cert("chaos.test"))
    untrusted = server_tls_context(stranger.issue_cert("chaos.test"))
    sinks = [
        await ChaosSink(
            f"127.0.0.{41 + i}",
            random.Random(rng.random()),
            faults=0.4,
            tls=trusted,
            untrusted=untrusted,
        ).start()
        for i in range(SINKS)
    ]
    dsn_sink = await ChaosSink("127.0.0.45", random.Random(0), faults=0.0).start()
    routes = {f"d{i}.test": f"{s.host}:{s.port}" for i, s in enumerate(sinks)}
    routes["sender.test"] = f"{dsn_sink.host}:{dsn_sink.port}"
    extra = RETRIES + f'tls_ca = "{directory / "ca.pem"}"\nforce_fsync = true\n'
    domain_options = ""
    if redis is not None:
        extra += cluster_stanza(redis.url)
        domain_options = 'cluster_outbound_throttle_messages = "10000/1"'
    relay = RelayProcess(directory, routes, extra, domain_options)
    redis_kills = 0
    try:
        await relay.start()
        injector = Injector(relay.port, random.Random(rng.random()), list(routes)[:SINKS])
        deadline = started + seconds
        injecting = asyncio.create_task(injector.run(messages, sessions, deadline - seconds / 3))
        killing_done = asyncio.Event()

        async def killer() -> None:
            try:
                for _ in range(kills):
                    await asyncio.sleep(rng.uniform(0.3, 3.0))
                    relay.kill()
                    await relay.start()
            finally:
                killing_done.set()

        async def redis_killer() -> int:
            assert redis is not None
            done = 0
            while not killing_done.is_set():
                await asyncio.sleep(rng.uniform(0.5, 3.0))
                redis.kill()
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                await asyncio.to_thread(redis.start)
                done += 1
            return done

        chaos = [asyncio.create_task(killer())]
        if redis is not None:
            chaos.append(asyncio.create_task(redis_killer()))
        await injecting
        results = await asyncio.gather(*chaos)
        redis_kills = results[1] if redis is not None else 0

        def settled() -> bool:
            out = {d.token for s in sinks for d in s.deliveries}
            out |= {d.token for d in dsn_sink.deliveries}
            return set(injector.accepted) <= out

        while time.monotonic() < deadline:  # drain: everything out, the spool empty
            if settled() and await relay.spool_messages() == 0:
                break
            await asyncio.sleep(0.25)
        drained = time.monotonic() - started
        status = await relay.stop()
    finally:
        await relay.stop()
        for sink in [*sinks, dsn_sink]:
            await sink.stop()
    spool = await Spool.open(relay.spoolbase, fsync=False)
    try:
        remaining = [e.message_id for e in spool.scan()]
        quarantined = spool.recovery_report.quarantined
    finally:
        await spool.close()
    temporary = leftovers(relay.spoolbase)
    faults: Counter[str] = Counter()
    for sink in sinks:
        faults.update(sink.injected)
    verdict = judge(
        injector.attempted,
        injector.accepted,
        [d for s in sinks for d in s.deliveries],
        dsn_sink.deliveries,
        relay.kills,
        reply_timeout=BODY_TIMEOUT,
    )
    ledger = write_ledger(directory / "ledger.json", started, sinks, dsn_sink, relay, verdict)
    extra_figures: dict[str, object] = {
        "delivery connections": sum(len(s.connections) for s in sinks),
        "drained after": f"{drained:.1f} s",
    }
    if redis is not None:
        extra_figures["redis kills (SIGKILL + restart)"] = redis_kills
    text = figures(
        "crash-and-fault test" + (" with a cluster stanza" if redis else ""),
        seed,
        injector,
        verdict,
        len(relay.kills),
        faults,
        extra_figures,
        elapsed=time.monotonic() - started,
    )

    def check() -> None:
        assert len(injector.accepted) >= messages, "the run injected fewer messages than asked"
        assert len(relay.kills) == kills
        assert not verdict.lost, (
            f"lost: {sorted(verdict.lost)[:20]} ({len(remaining)} messages still spooled)"
        )
        assert not verdict.unknown, [d.token for d in verdict.unknown][:20]
        assert not verdict.altered, verdict.altered[:20]
        assert not verdict.unexplained, (
            "duplicates outside any kill (times in s from the start; 'waited': from the "
            "dot read to the 250 sent): "
            + json.dumps({t: ledger["messages"][t] for t in verdict.unexplained})
            + f"; kills at {ledger['kills']}"
        )
        assert not temporary, temporary
        assert not quarantined, quarantined
        assert remaining == [], f"{len(remaining)} messages stuck in the spool"
        assert status == 0
        for kind in ("temp_reply", "drop_mid_data", "no_dot_reply", "garbage", "stall"):
            assert faults[kind] > 0, f"the run injected no {kind}"

    return text, check


def write_ledger(
    path: Path,
    started: float,
    sinks: list[ChaosSink],
    dsn_sink: ChaosSink,
    relay: RelayProcess,
    verdict: Verdict,
) -> dict[str, Any]:
    """For a failed run: when each suspicious message arrived where, and the kills."""

    def at(moment: float) -> float:
        return round(moment - started, 3)

    suspicious = set(verdict.unexplained) | verdict.lost | set(verdict.duplicates)
    record: dict[str, Any] = {
        "kills": [at(k) for k in relay.kills],
        "messages": {
            token: [
                {
                    "sink": sink.host,
                    "at": at(d.at),
                    "waited": round(d.at - d.dot, 3),
                    "connection": d.connection,
                    "opened": at(sink.connections[d.connection].opened),
                    "closed": at(sink.connections[d.connection].closed),
                    "quit": sink.connections[d.connection].quit,
                }
                for sink in [*sinks, dsn_sink]
                for d in sink.deliveries
                if d.token == token
            ]
            for token in sorted(suspicious)
        },
        "unexplained": sorted(verdict.unexplained),
        "answered after relay's timeout": sorted(verdict.gave_up),
    }
    path.write_text(json.dumps(record, indent=1))
    return record


def seed_of() -> int:
    return int(os.environ.get("RELAY_CRASH_SEED") or random.randrange(2**32))


async def test_crash_and_fault(tmp_path: Path, report: Callable[[str], None]) -> None:
    text, check = await crash_run(tmp_path, messages=300, kills=5, seconds=240, seed=seed_of())
    report(text)
    print(text)
    check()


async def test_crash_and_fault_with_redis_killed(
    tmp_path: Path, redis_server: RedisServer, report: Callable[[str], None]
) -> None:
    text, check = await crash_run(
        tmp_path, messages=200, kills=4, seconds=240, seed=seed_of(), redis=redis_server
    )
    report(text)
    print(text)
    check()


@pytest.mark.soak
async def test_crash_and_fault_soak(tmp_path: Path, report: Callable[[str], None]) -> None:
    env = os.environ.get
    text, check = await crash_run(
        tmp_path,
        messages=int(env("RELAY_SOAK_MESSAGES", "5000")),
        kills=int(env("RELAY_SOAK_KILLS", "20")),
        seconds=float(env("RELAY_SOAK_SECONDS", "900")),
        seed=seed_of(),
        sessions=16,
    )
    report(text)
    print(text)
    check()


def test_the_judge_explains_a_duplicate_by_a_kill_or_by_a_reply_relay_gave_up_on() -> None:
    """Pure: which second copies the crash test lets through. Times are monotonic seconds;
    each copy's connection opened a second before its 250, which came `waited` after the
    dot was read."""
    sent = {t: b"Subject: x\r\n\r\nbody\r\n" for t in ("killed", "slow", "twice")}
    content = b"Received: from x\r\n\tby relay\r\n" + sent["killed"]

    def copy(token: str, at: float, waited: float) -> Delivery:
        return Delivery(token, content, at, 0, at - 1.0, at - waited)

    deliveries = [
        copy("killed", 10.0, 0.1),  # 250 at 10 s, relay killed at 11 s: never recorded
        copy("killed", 20.0, 0.1),
        copy("slow", 30.0, 3.2),  # answered 3.2 s after the dot: relay had given up at 3 s
        copy("slow", 40.0, 0.1),
        copy("twice", 50.0, 1.0),  # no kill near, answered in time: a real duplicate
        copy("twice", 60.0, 0.1),
    ]
    verdict = judge(sent, sent, deliveries, [], kills=[11.0], reply_timeout=BODY_TIMEOUT)
    assert verdict.duplicates == {"killed": 1, "slow": 1, "twice": 1}
    assert verdict.gave_up == {"slow": 1}
    assert verdict.unexplained == {"twice": 1}
    assert not verdict.lost and not verdict.altered and not verdict.unknown
