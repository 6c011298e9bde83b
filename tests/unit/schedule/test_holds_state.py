"""Holds on disk (schedule/holds.py to_json/from_json/load): what is saved comes back,
ended holds are dropped at load, and a corrupt file is an error naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.schedule.holds import HoldTable, from_json, load, to_json


def table() -> HoldTable:
    holds = HoldTable()
    holds.hold("tenant", "acme", "One.Test", 2000.0, "complaints")
    holds.hold("campaign", "spring", "provider:gmail", 3000.0, "content")
    holds.hold("tenant", "acme", "two.test", 2500.0, "ip rep", binding="b1")
    holds.hold("tenant", "old", "three.test", 900.0, "ended")
    return holds


def test_holds_round_trip_through_json() -> None:
    again = from_json(to_json(table()), now=100.0)
    assert sorted(again.all(), key=lambda h: h.key) == sorted(table().all(), key=lambda h: h.key)
    assert again.for_job("acme", None, "one.test", None, 1000.0) is not None
    assert again.on_binding("acme", "b1", "two.test", 1000.0) is not None  # binding count kept
    assert again.for_job(None, "spring", "x.test", "provider:gmail", 1000.0) is not None


def test_ended_holds_are_dropped_at_load() -> None:
    again = from_json(to_json(table()), now=1000.0)
    assert sorted(h.subject for h in again.all()) == ["acme", "acme", "spring"]
    assert from_json(to_json(table()), now=5000.0).all() == []


def test_a_missing_file_is_no_holds_and_a_bad_one_an_error(tmp_path: Path) -> None:
    assert load(tmp_path / "holds.json", 0.0).all() == []
    path = tmp_path / "holds.json"
    path.write_text(to_json(table()))
    assert len(load(path, 0.0).all()) == 4
    with pytest.raises(ValueError, match="unknown hold kind 'ip'"):
        from_json('{"holds": [{"kind": "ip", "subject": "a", "target": "b", "until": 9}]}', 0.0)
    with pytest.raises(KeyError):
        from_json('{"holds": [{"kind": "tenant"}]}', 0.0)
    with pytest.raises(ValueError):
        from_json("{not json", 0.0)
