"""The worker link's framing and its tuple codecs."""

from __future__ import annotations

import asyncio

import pytest

from relay.spool.model import Envelope, Recipient, RecipientState
from relay.workers.wire import (
    HEADER,
    FrameReader,
    encode_frame,
    envelope_from,
    envelope_tuple,
    recipient_from,
    recipient_tuple,
)

ENVELOPE = Envelope(
    "0190abcd0001deadbeef",
    "",
    "bulk",
    "b2",
    1795597807.25,
    [
        Recipient("a@example.com"),
        Recipient("b@example.com", RecipientState.PENDING, 2, 1795597900.0, "451 later", 1),
        Recipient("c@example.com", RecipientState.DELIVERED, 1, 0.0, "250 ok"),
    ],
    2048,
)


def test_envelope_and_recipient_round_trip() -> None:
    assert envelope_from(envelope_tuple(ENVELOPE)) == ENVELOPE
    with_client = Envelope("m", "", "g", None, 1.0, [Recipient("a@x")], 1, ("192.0.2.7", "c"))
    assert envelope_from(envelope_tuple(with_client)) == with_client
    for r in ENVELOPE.recipients:
        assert recipient_from(recipient_tuple(r)) == r


async def test_frames_cut_anywhere_come_out_whole_and_in_order() -> None:
    frames = [
        ("hello", 0, "shard-0"),
        ("new", 0, (envelope_tuple(ENVELOPE), b"x" * 5000)),
        ("ok", 7, [envelope_tuple(ENVELOPE)] * 3),
        ("evict", 0, "id"),
    ]
    data = b"".join(encode_frame(*f) for f in frames)
    for cut in (1, 3, 4, 5, 100, 4999, len(data)):
        reader = asyncio.StreamReader()
        for start in range(0, len(data), cut):
            reader.feed_data(data[start : start + cut])
        reader.feed_eof()
        source = FrameReader(reader)
        assert [await source.next() for _ in frames] == frames
        with pytest.raises(asyncio.IncompleteReadError):
            await source.next()


async def test_an_oversized_frame_is_refused() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(HEADER.pack(1 << 30) + b"...")
    with pytest.raises(ConnectionError):
        await FrameReader(reader).next()
