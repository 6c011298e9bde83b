"""The pure decisions: batch sizes and the fallback shares."""

from __future__ import annotations

from relay.cluster.share import MAX_BATCH, batch_size, cap_share, throttle_share
from relay.config.values import Throttle


def test_batches_are_a_small_slice_of_the_rate() -> None:
    assert batch_size(Throttle(10, 1.0)) == 1
    assert batch_size(Throttle(1000, 1.0)) == 20
    assert batch_size(Throttle(100000, 1.0)) == MAX_BATCH
    assert batch_size(Throttle(1, 3600.0)) == 1


def test_a_throttle_share_divides_the_rate_exactly() -> None:
    for throttle, nodes in ((Throttle(10, 1.0), 2), (Throttle(10, 1.0), 3), (Throttle(7, 60), 10)):
        share = throttle_share(throttle, nodes)
        assert abs(share.count / share.period - throttle.count / throttle.period / nodes) < 1e-12
        assert share.count >= 1
    assert throttle_share(Throttle(10, 1.0), 0) == Throttle(10, 1.0)


def test_a_cap_share() -> None:
    assert cap_share(3, 2) == 1
    assert cap_share(10, 3) == 3
    assert cap_share(3, 5) == 1  # at least one each
    assert cap_share(0, 2) == 0
    assert cap_share(-1, 2) == -1
