"""Smoke check of the benchmark: relay end to end (scenario b) with 200 messages, no Postfix,
no C tools. Checks the table has numbers, not what they are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bench import run, systems


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


def _relay_cells(table: str, scenario_start: str) -> dict[str, str]:
    """metric -> relay's cell for the rows of the scenario whose name starts so."""
    cells: dict[str, str] = {}
    current = ""
    for line in table.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 10 or parts[1] in ("scenario", "---"):
            continue
        current = parts[1] or current
        if current.startswith(scenario_start):
            cells[parts[2]] = parts[3]
    return cells


def _number(cell: str) -> float:
    assert re.fullmatch(r"[\d,]+(\.\d+)?", cell), cell
    return float(cell.replace(",", ""))


def test_connection_per_message_rows_have_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    args = ["--only", "p", "--messages", "100", "--sessions", "5", "--timeout", "30"]
    code = run.main([*args, "--no-postfix", "--no-haraka", "--no-c-tools", "--out", str(out)])
    assert code == 0
    table = out.read_text()
    alone = _relay_cells(table, "(p) a connection per message, injection only")
    assert _number(alone["accepted msgs/s (= connections/s)"]) > 0
    assert _number(alone["CPU ms/connection (1 msg each)"]) > 0
    e2e = _relay_cells(table, "(p) a connection per message, end to end")
    assert _number(e2e["end-to-end msgs/s"]) > 0 and _number(e2e["CPU ms/msg"]) > 0
    assert "sink got" not in table and "error" not in table and "refused" not in table


def test_starttls_rows_have_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    args = ["--only", "t", "--messages", "60", "--sessions", "4", "--timeout", "30"]
    code = run.main([*args, "--no-postfix", "--no-haraka", "--no-c-tools", "--out", str(out)])
    assert code == 0
    table = out.read_text()
    e2e = _relay_cells(table, "(t) STARTTLS on injection")
    assert _number(e2e["end-to-end msgs/s"]) > 0
    assert (
        _number(
            _relay_cells(table, "(t) STARTTLS, a connection")["accepted msgs/s (= handshakes/s)"]
        )
        > 0
    )
    # every injection was upgraded (the injector fails a session whose STARTTLS fails) and
    # delivery used TLS too: the sink saw TLS sessions
    assert "TLS sessions at the sink" in table
    assert "sink got" not in table and "error" not in table and "injector errors" not in table


@pytest.mark.skipif(
    systems.haraka_available() is not None, reason="Haraka not installed (make bench-deps)"
)
def test_haraka_end_to_end_column(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    args = ["--only", "b", "--messages", "50", "--sessions", "5", "--timeout", "60"]
    code = run.main([*args, "--no-postfix", "--no-c-tools", "--out", str(out)])
    assert code == 0
    table = out.read_text()
    (row,) = [line for line in table.splitlines() if "| end-to-end msgs/s |" in line]
    haraka_cell = row.split("|")[5].strip()
    assert _number(haraka_cell) > 0, row


def test_bindings_ratio_is_a_row_with_its_target() -> None:
    """(d): the 1,000-binding rate over the 4-binding one, median of the pairs, in a row."""
    args = run.argparse.Namespace(
        messages=1000, size=2048, sessions=20, bindings=1000, rcpt_messages=100, queued=10
    )
    res = {
        "b-relay": run.Result("relay", messages=1000, e2e_rate=2000.0),
        "d-relay": run.Result("relay", messages=1000, e2e_rate=1700.0),
    }
    table = run.build_table(args, res, "not run", [], [0.85, 0.80, 0.95])
    cells = _relay_cells(table, "(d) 1,000 bindings")
    assert cells["end-to-end rate vs 4 bindings (median of 3 pairs)"] == "0.85"
    (row,) = [line for line in table.splitlines() if "rate vs 4 bindings" in line]
    assert "target >= 0.9 (short)" in row
