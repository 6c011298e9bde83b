"""The under-load test's pure parts: percentiles, windows and the verdict on the figures."""

from __future__ import annotations

import os

import pytest

from tests.reliability.steady_load import (
    Figures,
    Limits,
    disturbed_windows,
    judge,
    open_fds,
    percentile,
    rss_kb,
    undisturbed,
    windows,
)


def healthy() -> Figures:
    return Figures(
        seconds=120,
        rate=300,
        achieved=299,
        injected=1000,
        delivered=1000,
        arrived=1000,
        idle_p99=0.010,
        load_p99=0.019,
        rss_warm_kb=70_000,
        rss_peak_kb=72_000,
        fds_baseline=24,
        fds_after=24,
        tasks_baseline=9,
        tasks_after=9,
    )


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 99)


def test_windows_take_the_p99_of_each_interval() -> None:
    samples = [(100.0 + t / 10, float(t)) for t in range(200)]  # 20 s, 10 values a second
    assert windows(samples, 100.0, 10.0) == [98.0, 198.0]


def test_a_relay_that_held_up_has_no_problems() -> None:
    assert judge(healthy(), Limits()) == []


def test_each_kind_of_failure_is_named() -> None:
    f = healthy()
    f.rss_peak_kb = f.rss_warm_kb + 17 * 1024
    f.load_p99 = 0.021
    f.fds_after = 25
    f.tasks_after = 10
    f.refused = 2
    f.arrived = 999
    problems = judge(f, Limits())
    assert problems == [
        "RSS grew 17408 kB after the warm-up (bound 16384 kB)",
        "p99 latency under load 21.0 ms is over 2.0x the idle p99 10.0 ms",
        "25 fds open after the load, 24 before",
        "10 asyncio tasks after the load, 9 before",
        "2 injections under load were not answered 250",
        "1000 injected but 1000 delivered, 999 at the sink",
    ]


def test_latency_is_not_judged_while_other_work_holds_the_cores() -> None:
    f = healthy()
    f.load_p99 = 0.100
    f.other_cores = 1.5
    assert judge(f, Limits()) == []
    f.other_cores = 0.1
    assert judge(f, Limits()) == [
        "p99 latency under load 100.0 ms is over 2.0x the idle p99 10.0 ms"
    ]


def test_the_load_is_held_to_the_lower_of_the_two_idle_p99s() -> None:
    """A slow idle phase (before or after the load) does not lift the bound."""
    f = healthy()  # 19 ms under load, 10 ms idle before
    f.idle_after_p99 = 0.008
    assert f.idle_reference == 0.008
    assert judge(f, Limits()) == ["p99 latency under load 19.0 ms is over 2.0x the idle p99 8.0 ms"]
    f.idle_p99, f.idle_after_p99 = 0.030, 0.010  # the phase before was the slow one
    assert f.idle_reference == 0.010 and judge(f, Limits()) == []
    f.idle_after_p99 = 0.0  # not measured: the one before alone
    assert f.idle_reference == 0.030


def test_a_load_short_of_its_target_is_a_problem() -> None:
    f = healthy()
    f.achieved = 200
    assert judge(f, Limits()) == ["the load reached 200 msg/s of 300 targeted"]


def test_proc_readings_of_this_process() -> None:
    assert rss_kb(os.getpid()) > 1000
    assert open_fds(os.getpid()) >= 3


def test_windows_where_other_work_took_the_cores_are_found() -> None:
    # One reading a second for 30 s; the machine busy 1.0 core throughout, the test's own
    # processes 0.9 of it, except in seconds 12-15 where they took only 0.2 (other work 0.8).
    readings, busy, ours = [], 0.0, 0.0
    for second in range(31):
        readings.append((100.0 + second, busy, ours))
        busy += 1.0
        ours += 0.2 if 12 <= second < 16 else 0.9
    found = disturbed_windows(readings, 100.0, 10.0, 0.25)
    assert list(found) == [1] and found[1] == pytest.approx(0.38)  # 4 s of 0.8, 6 s of 0.1
    assert disturbed_windows(readings, 100.0, 10.0, 0.5) == {}
    samples = [(100.0 + t / 2, float(t)) for t in range(60)]
    assert undisturbed(samples, 100.0, 10.0, found) == [float(t) for t in range(20)] + [
        float(t) for t in range(40, 60)
    ]


def test_the_bound_applies_outside_the_disturbed_windows() -> None:
    f = healthy()
    f.window_p99 = [0.015] * 12
    f.load_p99 = 0.060  # the p99 over every window: raised by two disturbed ones
    f.disturbed = {3: 0.9, 7: 0.6}
    f.judged_p99 = 0.018
    assert judge(f, Limits()) == []
    f.judged_p99 = 0.021
    assert judge(f, Limits()) == [
        "p99 latency under load 21.0 ms is over 2.0x the idle p99 10.0 ms"
    ]
    f.disturbed = {k: 0.5 for k in range(7)}  # most windows disturbed: not judged at all
    assert judge(f, Limits()) == []
