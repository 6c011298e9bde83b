"""Disk faults under a running relay: a full spool filesystem answers 452 4.3.1 and takes
mail again once delivery has freed space; a failing fsync never yields a 250.

The full disk is real: a 2 MB tmpfs mounted as the spool of a `relay serve` process (we
run as root; without mount the test skips and says why). A failing fsync has no real
mechanism on this kernel (no device-mapper `error` target: /dev/mapper/control is
absent; no FUSE), so it comes through the spool's one file-call seam, relay.spool.FileOps
(tests/support/spool_faults.py): the data is written, then the durable write reports EIO
(or ENOSPC), as a disk whose cache flush failed does. Everything above that seam (group
commit, the cut-back of the segment, the SMTP reply) is relay's real code.
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from relay.spool import Spool
from tests.integration.relay_harness import RelayFactory, free_port
from tests.reliability.chaos_sink import ChaosSink
from tests.reliability.harness import SENDER, RelayProcess, leftovers, message
from tests.support.spool_faults import FaultyOps
from tests.support.tmpfs import mounted_tmpfs


@pytest.fixture
def tmpfs_spool(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "spool") as spool:
        yield spool


async def send(port: int, token: str, lines: int) -> int:
    """One message in its own session: the reply code to its final dot."""
    try:
        await aiosmtplib.send(
            message(token, lines),
            sender=SENDER,
            recipients=["r@one.test"],
            hostname="127.0.0.1",
            port=port,
            timeout=20,
        )
    except aiosmtplib.SMTPResponseException as refused:
        return refused.code
    return 250


async def spooled_tokens(spoolbase: Path) -> set[str]:
    spool = await Spool.open(spoolbase, fsync=False)
    try:
        assert spool.recovery_report.quarantined == []
        found = set()
        for envelope in spool.scan():
            content = await spool.load(envelope.message_id)
            found.add(content.split(b"\r\nX-Token: ", 1)[1].split(b"\r\n", 1)[0].decode())
        return found
    finally:
        await spool.close()


async def test_a_full_spool_answers_452_and_recovers_when_delivery_frees_space(
    tmp_path: Path, tmpfs_spool: Path
) -> None:
    gateway = free_port("127.0.0.46")  # nothing listens there until the sink starts
    relay = RelayProcess(
        tmp_path,
        {"one.test": f"127.0.0.46:{gateway}"},
        "force_fsync = true\nretry_interval = 0.5\nmax_retry_interval = 1\nconnect_timeout = 2\n",
    )
    sink = ChaosSink("127.0.0.46", random.Random(0), faults=0.0, port=gateway)
    try:
        await relay.start()
        codes: dict[str, int] = {}
        for n in range(40):  # 90 kB each: 2 MB holds about 20
            codes[f"full{n}"] = await send(relay.port, f"full{n}", 1500)
            if list(codes.values())[-3:] == [452] * 3:
                break
        accepted = {t for t, c in codes.items() if c == 250}
        assert set(codes.values()) == {250, 452}, codes
        assert 3 <= len(accepted) < 30, codes
        assert await relay.spool_messages() == len(accepted)
        # Delivery resumes: relay hands the queue over and frees its segments.
        await sink.start()
        deadline = time.monotonic() + 60
        while await relay.spool_messages() != 0:
            assert time.monotonic() < deadline, "the full spool did not drain"
            await asyncio.sleep(0.2)
        again = {f"again{n}": await send(relay.port, f"again{n}", 1500) for n in range(3)}
        assert set(again.values()) == {250}, f"no recovery after the spool drained: {again}"
        deadline = time.monotonic() + 60
        while {d.token for d in sink.deliveries} < accepted | set(again):
            assert time.monotonic() < deadline, "the mail taken after recovery was not delivered"
            await asyncio.sleep(0.2)
        assert await relay.stop() == 0
    finally:
        await relay.stop()
        await sink.stop()
    delivered = [d.token for d in sink.deliveries]
    assert set(delivered) == accepted | set(again)  # nothing refused with 452 went out
    assert leftovers(tmpfs_spool) == []


async def test_an_fsync_error_never_yields_250(tmp_path: Path, relay_factory: RelayFactory) -> None:
    ops = FaultyOps()
    relay = await relay_factory(
        'domain "one.test" { suspend_delivery = true }\n',
        file_ops=ops,
        fsync=True,
    )
    codes: dict[str, int] = {}

    async def burst(prefix: str, count: int) -> dict[str, int]:
        tokens = [f"{prefix}{n}" for n in range(count)]
        replies = await asyncio.gather(*(send(relay.port, t, 20) for t in tokens))
        codes.update(zip(tokens, replies, strict=True))
        return dict(zip(tokens, replies, strict=True))

    assert set((await burst("before", 5)).values()) == {250}
    ops.sync_fault = errno.EIO
    assert set((await burst("eio", 12)).values()) == {451}
    ops.sync_fault = errno.ENOSPC
    assert set((await burst("enospc", 6)).values()) == {452}
    ops.sync_fault = None  # the disk recovers: the same daemon takes mail again
    assert set((await burst("after", 5)).values()) == {250}
    spoolbase = relay.directory / "spool"
    await relay_factory.stop_all()
    accepted = {t for t, c in codes.items() if c == 250}
    assert await spooled_tokens(spoolbase) == accepted  # and nothing that was refused
    assert leftovers(spoolbase) == []


async def test_a_spool_filled_by_small_messages_still_records_deliveries(
    tmp_path: Path, tmpfs_spool: Path
) -> None:
    """Filled with small messages the disk used to fill to the last byte: then no delivery
    could be recorded, and every message went out again and again (1,783 deliveries of 661
    messages in 20 s, none removed). Now new mail stops short (452) of the space kept for
    the records of deliveries: each message goes out once and the spool drains."""
    gateway = free_port("127.0.0.47")
    relay = RelayProcess(
        tmp_path,
        {"one.test": f"127.0.0.47:{gateway}"},
        "force_fsync = true\nretry_interval = 0.5\nmax_retry_interval = 1\nconnect_timeout = 2\n",
    )
    sink = ChaosSink("127.0.0.47", random.Random(0), faults=0.0, port=gateway)
    try:
        await relay.start()
        codes: dict[str, int] = {}
        for n in range(3000):  # 1.5 kB each: a 2 MB disk holds about 1,000
            codes[f"small{n}"] = await send(relay.port, f"small{n}", 20)
            if list(codes.values())[-3:] == [452] * 3:
                break
        accepted = {t for t, c in codes.items() if c == 250}
        assert set(codes.values()) == {250, 452}, "the disk did not fill"
        await sink.start()
        deadline = time.monotonic() + 90
        while await relay.spool_messages() != 0:
            assert time.monotonic() < deadline, "the spool did not drain"
            await asyncio.sleep(0.2)
        assert await relay.stop() == 0
    finally:
        await relay.stop()
        await sink.stop()
    delivered = [d.token for d in sink.deliveries]
    assert set(delivered) == accepted
    assert len(delivered) == len(accepted), "messages delivered more than once"
