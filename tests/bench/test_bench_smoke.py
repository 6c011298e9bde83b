"""Smoke check of the benchmark: relay end to end (scenario b) with 200 messages, no Postfix,
no C tools. Checks the table has numbers, not what they are."""

from __future__ import annotations

import re
from pathlib import Path

from tests.bench import run


def test_relay_end_to_end_table_has_numbers(tmp_path: Path, capsys: object) -> None:
    out = tmp_path / "bench.md"
    code = run.main(
        [
            "--only",
            "b",
            "--messages",
            "200",
            "--sessions",
            "5",
            "--timeout",
            "30",
            "--no-postfix",
            "--no-c-tools",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    table = out.read_text()
    assert "Postfix: not run (--no-postfix)" in table
    rows = {line.split("|")[2].strip(): line for line in table.splitlines() if line.count("|") > 8}
    for metric in ("injection msgs/s", "end-to-end msgs/s", "250 -> sink p99 (ms)", "CPU ms/msg"):
        relay_cell = rows[metric].split("|")[3].strip()
        assert re.fullmatch(r"[\d,]+(\.\d+)?", relay_cell), (metric, relay_cell)
        assert float(relay_cell.replace(",", "")) > 0, (metric, relay_cell)
    assert "sink got" not in table and "error" not in table


def test_http_injection_row_has_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    code = run.main(
        [
            "--only",
            "h",
            "--messages",
            "200",
            "--sessions",
            "5",
            "--timeout",
            "30",
            "--no-postfix",
            "--no-c-tools",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    table = out.read_text()
    (row,) = [line for line in table.splitlines() if "accepted msgs/s" in line]
    assert row.startswith("| (h) HTTP injection, 200 x 2048 B, 5 keep-alive clients")
    rate = row.split("|")[3].strip()
    assert re.fullmatch(r"[\d,]+", rate) and int(rate.replace(",", "")) > 0, row
    assert "refused" not in table and "error" not in table
