"""Spool statistics of several shards as one."""

from __future__ import annotations

from dataclasses import fields, replace

from relay.spool.statistics import SpoolStatistics, combine


def test_counts_add_up_and_the_largest_batch_is_the_largest() -> None:
    zero = SpoolStatistics(**{f.name: 0 for f in fields(SpoolStatistics)})
    a = replace(zero, messages=3, stored=10, largest_batch=7, fsyncs=4)
    b = replace(zero, messages=2, stored=5, largest_batch=9, fsyncs=1)
    total = combine([a, b])
    assert (total.messages, total.stored, total.largest_batch, total.fsyncs) == (5, 15, 9, 5)
    assert combine([a]) == a
