"""IP warm-up in the queue core: a binding on day k of its schedule takes exactly its cap,
the rest overflows to warm members of its group; when every binding is capped the mail
waits for the next UTC day (or hour). Driven with a ManualClock's times."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.bind.build import build_selector
from relay.bind.suspensions import SuspensionTable
from relay.clock import ManualClock
from relay.config import loads
from relay.config.errors import ConfigError
from relay.durable import write_atomically
from relay.schedule.actions import Action, WakeAt
from relay.schedule.jobs import Job
from relay.schedule.live_routes import LiveRoutes
from relay.schedule.queues import Queues
from relay.schedule.warmup import DAY, WarmupCounts, WarmupPlan, cap_now, date_start
from relay.wiring import compile_settings

START = date_start("2026-12-01")
T0 = START + 10 * 3600  # 10:00 UTC on day 1


def conf(b1: str, b2: str = "", b3: str = "") -> str:
    return f"""
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 {b1} }}
  binding "b2" {{ bind_address = 127.0.0.3 {b2} }}
  {b3}
}}
"""


COLD = 'warmup_schedule = ( "3/day" "5/day" "2/hour" ) warmup_start = "2026-12-01"'


class Core:
    def __init__(self, text: str, counts: WarmupCounts | None = None) -> None:
        settings = compile_settings(loads(text))
        selector, _ = build_selector(
            settings.groups, settings.bindings.values(), SuspensionTable(), plumbed=lambda a: True
        )
        self.clock = ManualClock(T0)
        self.q = Queues(selector, LiveRoutes(settings.routes), warmup=counts)

    def run(self) -> float:
        """Step until nothing more is placed; returns the WakeAt time."""
        for _ in range(1000):
            actions: list[Action] = self.q.step(self.clock.now())
            last = actions[-1]
            assert isinstance(last, WakeAt)
            if last.at > self.clock.now():
                return last.at
        raise AssertionError("does not settle")

    def per_binding(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for row in self.q.ready_rows():
            if row.queued:
                found[row.binding] = found.get(row.binding, 0) + row.queued
        return found

    def drain(self) -> None:
        """Hand every placed job back as delivered (the count stays: it was placed)."""
        for job in list(self.q._flight):
            self.q.job_finished(job)
        for rq in self.q._ready.values():
            rq.jobs.clear()


_n = iter(range(1_000_000))


def job(domain: str = "one.test", binding: str | None = None) -> Job:
    n = next(_n)
    return Job(f"m{n}", "s@x.test", "g", binding, domain, T0, [(0, f"r{n}@{domain}", 0)], due=T0)


def test_cap_follows_the_days_of_the_schedule() -> None:
    plan = WarmupPlan(("b",), True, START, ((50, DAY), (100, DAY), (20, 3600.0)))
    assert cap_now(plan, START - 5) is not None  # before the start: the first step
    day1 = cap_now(plan, START + 1)
    assert day1 is not None and (day1.limit, day1.period_end) == (50, START + DAY)
    day2 = cap_now(plan, START + DAY + 7200)
    assert day2 is not None and (day2.limit, day2.day) == (100, 1)
    hour = cap_now(plan, START + 2 * DAY + 3600 * 5 + 10)
    assert hour is not None and (hour.limit, hour.period_end) == (20, START + 2 * DAY + 6 * 3600)
    assert cap_now(plan, START + 3 * DAY) is None  # past the list: no cap
    assert cap_now(plan, START + 3 * DAY, start=START + 3 * DAY) is not None  # age reset


def test_day_one_cap_is_exact_and_the_rest_overflows_to_a_warm_binding() -> None:
    core = Core(conf(COLD))
    for _ in range(12):
        core.q.schedule(job())
    core.run()
    assert core.per_binding() == {"b1": 3, "b2": 9}
    assert core.q.warmup_status("b1", "one.test", core.clock.now()) == {
        "age_days": 0,
        "cap": 3,
        "period": "day",
        "count": 3,
    }


async def test_day_two_cap_grows() -> None:
    core = Core(conf(COLD))
    for _ in range(3):
        core.q.schedule(job())
    core.run()
    core.drain()
    await core.clock.advance(DAY)
    for _ in range(12):
        core.q.schedule(job())
    core.run()
    assert core.per_binding()["b1"] == 5


async def test_every_binding_capped_waits_for_the_next_day_then_leaves() -> None:
    both = COLD.replace('"3/day"', '"2/day"')
    core = Core(conf(both, both))
    for _ in range(6):
        core.q.schedule(job())
    wake = core.run()
    assert core.per_binding() == {"b1": 2, "b2": 2}
    # Waiting for the next UTC midnight: no attempt, no failure meanwhile.
    assert {row.blocked_until for row in core.q.scheduled_rows()} == {START + DAY}
    assert wake <= START + DAY
    core.drain()
    await core.clock.advance(START + DAY - 1 - core.clock.now())
    core.run()
    assert core.per_binding() == {}
    await core.clock.advance(1)
    core.run()
    assert core.per_binding() == {"b1": 1, "b2": 1}  # day 2: the two left


async def test_hour_steps_wait_for_the_next_hour() -> None:
    hourly = 'warmup_schedule = ( "1/hour" ) warmup_start = "2026-12-01"'
    core = Core(conf(hourly, hourly))
    for _ in range(3):
        core.q.schedule(job())
    wake = core.run()
    assert wake == T0 + 3600
    assert core.per_binding() == {"b1": 1, "b2": 1}


def test_a_domain_scope_schedule_caps_only_that_domain() -> None:
    core = Core(conf(f'domain "cold.test" {{ {COLD} }}'))
    for _ in range(6):
        core.q.schedule(job("cold.test"))
        core.q.schedule(job("other.test"))
    core.run()
    rows = {(r.binding, r.domain): r.queued for r in core.q.ready_rows()}
    assert rows[("b1", "cold.test")] == 3
    assert rows[("b1", "other.test")] == 3  # round robin: the other domain is not capped


def test_counts_and_ages_survive_a_restart(tmp_path: Path) -> None:
    counts = WarmupCounts()
    core = Core(conf(COLD), counts)
    for _ in range(2):
        core.q.schedule(job(binding="b1"))
    core.run()
    counts.set_age("b2", 4, core.clock.now())
    path = tmp_path / "warmup.json"
    write_atomically(counts.to_json(), path)
    again = WarmupCounts.load(path)
    assert again.starts == counts.starts
    core2 = Core(conf(COLD), again)
    for _ in range(6):
        core2.q.schedule(job())
    core2.run()
    assert core2.per_binding()["b1"] == 1  # 3 a day, 2 taken before the restart


def test_a_bad_schedule_names_the_option() -> None:
    with pytest.raises(ConfigError) as err:
        loads('warmup_schedule = ( "50/week" )')
    assert "warmup_schedule" in str(err.value) and "N/day" in str(err.value)
    with pytest.raises(ConfigError) as err:
        loads('warmup_start = "yesterday"')
    assert "YYYY-MM-DD" in str(err.value)


def test_a_binding_already_at_its_cap_is_found_and_skipped() -> None:
    counts = WarmupCounts()
    key = ("b1", "binding_group", "g", "binding", "b1")
    for _ in range(3):
        counts.add(key, START)  # e.g. loaded after a restart
    core = Core(conf(COLD), counts)
    for _ in range(5):
        core.q.schedule(job())
    core.run()
    assert core.per_binding() == {"b2": 5}
    assert core.q.selector.caps.until("b1", "one.test", T0) == START + DAY


def test_many_bindings_found_capped_at_once_still_overflow() -> None:
    members = "\n".join(
        f'binding "c{i}" {{ bind_address = 127.0.1.{i + 2} {COLD} }}' for i in range(40)
    )
    text = f'binding_group "g" {{\n{members}\nbinding "warm" {{ bind_address = 127.0.2.2 }}\n}}'
    counts = WarmupCounts()
    for i in range(40):  # all 40 at their day-1 cap already (e.g. after a restart)
        for _ in range(3):
            counts.add((f"c{i}", "binding_group", "g", "binding", f"c{i}"), START)
    core = Core(text, counts)
    for _ in range(3):
        core.q.schedule(job())
    core.run()
    assert core.per_binding() == {"warm": 3}  # found past the 40 capped ones (5 probes each)


def test_bindings_found_capped_at_once_leave_the_rotation_in_one_rebuild(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a restart, 40 bindings at their cap: one look at every member, one rotation
    rebuilt (not one per max_probe of them: O(N) once, not O(N^2))."""
    members = "\n".join(
        f'binding "c{i}" {{ bind_address = 127.0.1.{i + 2} {COLD} }}' for i in range(40)
    )
    text = f'binding_group "g" {{\n{members}\nbinding "warm" {{ bind_address = 127.0.2.2 }}\n}}'
    counts = WarmupCounts()
    for i in range(40):
        for _ in range(3):
            counts.add((f"c{i}", "binding_group", "g", "binding", f"c{i}"), START)
    core = Core(text, counts)
    built: list[str] = []
    original = core.q.selector._build

    def counting(group: str, suspended: object) -> object:
        built.append(group)
        return original(group, suspended)  # type: ignore[arg-type]

    monkeypatch.setattr(core.q.selector, "_build", counting)
    for _ in range(3):
        core.q.schedule(job())
    core.run()
    assert core.per_binding() == {"warm": 3}
    assert len(built) == 2  # the first rotation, and the one without the 40 capped
