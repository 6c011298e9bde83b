"""The reliability suite's figures: each test adds its block with `report(text)`; they are
printed at the end of the run (also when pytest captures output) and kept in
build/reliability/figures.txt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

FIGURES: list[str] = []
OUT = Path(__file__).parents[2] / "build" / "reliability" / "figures.txt"


@pytest.fixture
def report() -> Callable[[str], None]:
    def add(text: str) -> None:
        FIGURES.append(text)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        with OUT.open("a") as out:
            out.write(text + "\n")

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for block in FIGURES:
            terminalreporter.write_line(block)
