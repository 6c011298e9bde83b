"""Warm-up counts through a SIGKILL: a binding on a cap of 3 a day that has sent its 3 does
not send them again after a crash and restart (the counts are saved every half second while
they change; they were saved every 10 s, and a cap reached in a second was sent twice)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiosmtplib

from tests.reliability.harness import RelayProcess
from tests.support.sinks import SmtpSink


async def wait_for(predicate: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_a_warm_up_cap_holds_through_a_sigkill(tmp_path: Path) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    async with SmtpSink("127.0.0.1") as sink:
        relay = RelayProcess(
            tmp_path,
            routes={"w.test": f"127.0.0.1:{sink.port}"},
            extra=f'warmup_schedule = ( "3/day" ) warmup_start = "{today}"',
        )
        await relay.start()
        try:
            for i in range(5):
                await aiosmtplib.send(
                    b"Subject: warm\r\n\r\nbody\r\n",
                    sender="s@sender.test",
                    recipients=[f"r{i}@w.test"],
                    hostname="127.0.0.1",
                    port=relay.port,
                )
            await wait_for(lambda: len(sink.messages) == 3, within=15)
            await asyncio.sleep(1.5)  # three saving periods
            saved = json.loads((relay.spoolbase / "warmup.json").read_text())
            assert [count for _, _, count in saved["counts"]] == [3]
            relay.kill()
            await relay.start()
            await asyncio.sleep(2.0)  # time enough for a delivery, were one allowed
            assert len(sink.messages) == 3, "the day's cap was sent again after the crash"
            assert await relay.spool_messages() == 2  # waiting for tomorrow
        finally:
            await relay.stop()
