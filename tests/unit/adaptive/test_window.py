import pytest

from relay.adaptive.window import OVERFLOW, Window, fingerprint


def test_counts_within_the_window_and_rollover() -> None:
    w = Window(span=60.0, buckets=6)  # 10 s buckets
    w.add(0.0, "attempt")
    w.add(5.0, "attempt")
    w.add(15.0, "attempt", 3)
    assert w.total("attempt") == 5
    # at 60 s the first bucket (0-10 s) has left the window
    assert w.total("attempt", now=60.0) == 3
    assert w.total("attempt", now=69.9) == 3
    assert w.total("attempt", now=70.0) == 0
    assert w.is_empty()


def test_a_long_gap_clears_everything() -> None:
    w = Window(span=60.0, buckets=6)
    for t in range(0, 60, 5):
        w.add(float(t), "x")
    assert w.total("x") == 12
    w.add(1000.0, "x")
    assert w.total("x") == 1


def test_late_events_count_in_the_newest_bucket() -> None:
    w = Window(span=60.0, buckets=6)
    w.add(50.0, "x")
    w.add(10.0, "x")  # clock skew: never corrupts older buckets
    assert w.total("x", now=59.0) == 2
    assert w.total("x", now=110.0) == 0


def test_distinct_keys_are_bounded() -> None:
    w = Window(span=60.0, buckets=6, max_keys=3)
    for i in range(10):
        w.add(1.0, f"k{i}")
    assert set(w.totals) == {"k0", "k1", "k2", OVERFLOW}
    assert w.total(OVERFLOW) == 7


def test_state_round_trip_and_shape_check() -> None:
    w = Window(span=60.0, buckets=6)
    w.add(1.0, "a")
    w.add(31.0, "b", 2)
    copy = Window(span=60.0, buckets=6)
    copy.load_data(w.to_data())
    assert copy.totals == {"a": 1, "b": 2}
    assert copy.total("a", now=61.0) == 0
    assert copy.total("b", now=61.0) == 2
    with pytest.raises(ValueError):
        Window(span=120.0, buckets=6).load_data(w.to_data())


def test_fingerprint_folds_varying_parts() -> None:
    a = fingerprint(421, "4.7.0 Too many connections from [192.0.2.1], id=8c1f2ab3")
    b = fingerprint(421, "4.7.0 Too many connections from [198.51.100.7], id=77aa0913")
    assert a == b
    assert a.startswith("421 ")
    assert fingerprint(550, "<x@example.com> unknown") == fingerprint(
        550, "<y@example.org> unknown"
    )
    assert fingerprint(None, "timeout").startswith("---")
