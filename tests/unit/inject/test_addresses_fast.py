"""parse_path's one-regex fast path decides exactly as the character-by-character parser."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.inject import addresses

_NEVER = re.compile(r"(?!)")


def _outcome(text: str) -> addresses.ParsedPath | str:
    try:
        return addresses.parse_path(text)
    except addresses.AddressError as error:
        return error.reply


def _both(text: str) -> tuple[addresses.ParsedPath | str, addresses.ParsedPath | str]:
    fast = _outcome(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(addresses, "_SIMPLE", _NEVER)
        slow = _outcome(text)
    return fast, slow


_PIECES = st.sampled_from(
    ["<", ">", "@", ".", "-", "a", "Z", "9", "%", '"', "[", "]", " ", "x" * 63, "SIZE=1", ":"]
)


@settings(max_examples=500)
@given(st.lists(_PIECES, max_size=14))
def test_fast_path_matches_slow_path(pieces: list[str]) -> None:
    fast, slow = _both("".join(pieces))
    assert fast == slow


@pytest.mark.parametrize(
    "text",
    [
        "<a@b.example>",
        "<a@b.example> SIZE=10",
        "<a@b.example>SIZE=10",
        "<a..b@c>",
        "<a@-b.c>",
        "<a@b-.c>",
        "<a@" + "x" * 64 + ".c>",
        "<" + "a" * 65 + "@b>",
        "<a@" + ".".join(["x" * 60] * 5) + ">",
        "<a@b.c.>",
        "<a.@b>",
    ],
)
def test_edge_cases(text: str) -> None:
    fast, slow = _both(text)
    assert fast == slow


@settings(max_examples=500)
@given(st.lists(_PIECES, max_size=14))
def test_plain_address_is_parse_paths_or_no_verdict(pieces: list[str]) -> None:
    text = "".join(pieces)
    plain = addresses.plain_address(text)
    if plain is not None:
        path = _outcome(text)
        assert isinstance(path, addresses.ParsedPath) and path.params == ""
        assert plain == path.address


def test_plain_address_decides_the_common_shape() -> None:
    assert addresses.plain_address(" <bulk.sender@mail.example.com> ") == (
        "bulk.sender@mail.example.com"
    )
    assert addresses.plain_address("<a@b> SIZE=10") is None
    assert addresses.plain_address("<>") is None
    assert addresses.plain_address("<" + "a" * 65 + "@b>") is None
    assert addresses.plain_address("<a@-b.example>") is None
