"""Smoke check of the DKIM bench rows: tests/bench/dkim_sign.py measures something, and
run.py's table shows it. Checks there are numbers, not what they are."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.bench import dkim_sign, run


def test_dkim_sign_measures_both_algorithms(capsys: pytest.CaptureFixture[str]) -> None:
    assert dkim_sign.main(["--seconds", "0.2", "--rounds", "2"]) == 0
    results = json.loads(capsys.readouterr().out)
    for kind in ("rsa", "ed25519"):
        assert results[f"{kind}_one_thread"] > 0 and results[f"{kind}_pool"] > 0
        assert len(results[f"{kind}_pool_rounds"]) == len(results[f"{kind}_key_alone_rounds"]) == 2
        assert results[f"{kind}_key_alone"] > 0 and results[f"{kind}_of_key_alone"] > 0
        assert results[f"{kind}_loop_gap"] >= results[f"{kind}_loop_lag_p99"] >= 0
    args = argparse.Namespace(messages=10, size=2048, sessions=1, rcpt_messages=1, bindings=1)
    table = run.build_table(args, {}, "not run", [], None, results)
    rows = [line for line in table.splitlines() if "signatures/s" in line]
    assert len(rows) == 2 and "RSA-2048" in rows[0] and "Ed25519" in rows[1]
    assert all(row.split("|")[3].strip().replace(",", "").isdigit() for row in rows)
    assert all("p99" in row and "key operation alone" in row for row in rows)
