"""Which decisions made while Redis was down are shared when it is back (pure rule)."""

from __future__ import annotations

import pytest

from relay.cluster.holds import still_to_share

NOW = 1000.0


@pytest.mark.parametrize(
    ("ends", "theirs", "shared"),
    [
        (NOW + 60, None, True),  # nothing recorded: the hold goes out
        (NOW - 1, None, False),  # over already
        (NOW + 60, ("n1", NOW + 10), True),  # the record is this node's own, older
        (None, ("n1", NOW + 10), True),  # this node's resume of its own hold
        (None, None, True),  # a resume with nothing recorded: harmless, pushed
        (NOW + 60, ("n2", NOW + 10), True),  # another node's hold ends sooner: this one
        (NOW + 60, ("n2", NOW + 600), False),  # another node's hold lasts longer: it stands
        (None, ("n2", NOW + 600), False),  # never lift another node's hold from here
        (NOW + 60, ("n2", None), False),  # another node's adjusted value stands
    ],
)
def test_still_to_share(
    ends: float | None, theirs: tuple[str, float | None] | None, shared: bool
) -> None:
    assert still_to_share(ends, theirs, "n1", NOW) is shared
