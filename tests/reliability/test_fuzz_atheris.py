"""The atheris runs (atheris_fuzz.py), each bounded in runs and time; skipped where atheris
is not installed (its wheels are for x86-64 Linux)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed"
)
TARGETS = ["smtp", "data", "config", "spool"]


async def run(target: str, runs: int, seconds: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reliability.atheris_fuzz",
        target,
        f"-runs={runs}",
        f"-max_total_time={seconds}",
        "-max_len=2048",
        "-rss_limit_mb=1024",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "Done" in text, text[-2000:]  # libFuzzer's last line: "Done N runs in S second(s)"


@pytest.mark.parametrize("target", TARGETS)
async def test_atheris(target: str) -> None:
    await run(target, runs=2000, seconds=3)


@pytest.mark.soak
@pytest.mark.parametrize("target", TARGETS)
async def test_atheris_soak(target: str) -> None:
    await run(target, runs=5_000_000, seconds=300)
