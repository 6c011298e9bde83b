"""The event log's directly formatted reception line says what the generic encoder says."""

from __future__ import annotations

import json
from pathlib import Path

from relay.dispose.events import EventLog
from relay.spool.model import Envelope, Recipient


def reception_fields(envelope: Envelope) -> dict[str, object]:
    """The reception event's fields, as the generic call would take them."""
    return {
        "message_id": envelope.message_id,
        "sender": envelope.sender,
        "recipients": len(envelope.recipients),
        "binding_group": envelope.binding_group,
        "binding": envelope.binding,
        "size": envelope.size,
    }


def test_reception_line_is_the_generic_events_line(tmp_path: Path) -> None:
    envelopes = [
        Envelope(
            "0195f3c2a1b0", "bulk@example.com", "default", None, 1.0, [Recipient("a@x")], 2048
        ),
        Envelope(
            'q"1', "\u00e9\\\x01@x", "gr\u00fcn", "b1", 2.0, [Recipient("a@x"), Recipient("b@y")]
        ),
    ]
    fast, generic = EventLog(tmp_path / "fast.jsonl"), EventLog(tmp_path / "generic.jsonl")
    for envelope in envelopes:
        fast.reception(envelope)
        generic("reception", reception_fields(envelope))
    fast.close()
    generic.close()
    assert fast.counts == generic.counts == {"reception": 2}
    got = [json.loads(line) for line in (tmp_path / "fast.jsonl").read_text().splitlines()]
    want = [json.loads(line) for line in (tmp_path / "generic.jsonl").read_text().splitlines()]
    assert len(got) == 2
    for a, b in zip(got, want, strict=True):
        assert abs(a.pop("time") - b.pop("time")) < 5
        assert list(a) == list(b)  # same keys, same order
        assert a == b


def test_reception_counts_without_a_file() -> None:
    log = EventLog(None)
    log.reception(Envelope("m", "", "default", None, 1.0, [Recipient("a@x")]))
    assert log.counts == {"reception": 1}


async def test_a_lone_event_is_on_disk_within_a_second(tmp_path: Path) -> None:
    from relay.clock import ManualClock

    clock = ManualClock()
    path = tmp_path / "events.jsonl"
    log = EventLog(path, clock=clock)
    log("delivery", {"n": 1})
    log("delivery", {"n": 2})  # one timer for both
    assert path.read_text() == ""  # buffered
    assert clock.pending() == 1
    await clock.advance(0.5)
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2]
    assert clock.pending() == 0
    log.close()


def test_rotation_by_size_and_on_request(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_size=200, keep=2)
    for n in range(12):
        log("delivery", {"n": n, "pad": "x" * 40})
    log.rotate()  # as SIGUSR1 does
    log("delivery", {"n": 99})
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]  # keep=2: older gone
    assert all(p.stat().st_size < 200 + 100 for p in tmp_path.iterdir())  # + one line
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [99]
    newest_rotated = [json.loads(x)["n"] for x in (tmp_path / "events.jsonl.1").read_text().split()]
    assert newest_rotated and newest_rotated[-1] == 11
