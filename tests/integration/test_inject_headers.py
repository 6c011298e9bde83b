"""Group assignment and header rewriting, over a real socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.inject import ListenerSettings, PeerSettings
from relay.inject.settings import parse_network
from tests.integration.inject_helpers import (
    OUTSIDE,
    DirSpool,
    RawClient,
    make_settings,
    send_message,
    serving,
)


async def _one(tmp_path: Path, data: bytes, **overrides: object) -> tuple[DirSpool, str]:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(**overrides), spool) as (_, port):
        client = await RawClient.connect(port)
        await client.greet()
        _, text = await send_message(client, data)
        await client.close()
    return spool, text


@pytest.mark.parametrize(
    ("header", "group", "binding"),
    [
        (b"X-Binding-Group: marketing\r\n", "marketing", None),
        (b"x-binding-group:   bulk  \r\n", "bulk", None),
        (b"X-Binding: m2\r\n", "marketing", "m2"),
        (b"X-Binding-Group: marketing\r\nX-Binding: m1\r\n", "marketing", "m1"),
        (b"", "default", None),
    ],
)
async def test_headers_choose_the_group_and_are_removed(
    tmp_path: Path, header: bytes, group: str, binding: str | None
) -> None:
    data = b"From: a@example.test\r\n" + header + b"Subject: x\r\n\r\nbody\r\n.\r\n"
    spool, text = await _one(tmp_path, data)
    assert text.startswith("250 2.0.0"), text
    [message] = spool.messages
    assert (message.binding_group, message.binding) == (group, binding)
    assert b"x-binding" not in message.content.lower()
    fields = [f for f in message.content.split(b"\r\n") if f and not f.startswith(b"\t")]
    assert fields[1:] == [b"From: a@example.test", b"Subject: x", fields[3], b"body"]
    assert fields[0].startswith(b"Received: ") and fields[3].startswith(b"Message-ID: ")


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (b"X-Binding-Group: nosuch\r\n", '"nosuch"'),
        (b"X-Binding: nosuch\r\n", '"nosuch"'),
        (b"X-Binding-Group: bulk\r\nX-Binding: m1\r\n", '"m1"'),
    ],
)
async def test_unknown_group_or_binding_is_refused_and_nothing_spooled(
    tmp_path: Path, header: bytes, named: str
) -> None:
    spool, text = await _one(tmp_path, header + b"Subject: x\r\n\r\nbody\r\n.\r\n")
    assert text.startswith("550 5.7.1") and named in text, text
    assert spool.messages == []
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240


async def test_listener_and_peer_groups_apply_without_headers(tmp_path: Path) -> None:
    listener = ListenerSettings(
        "127.0.0.1:0",
        binding_group="bulk",
        peers=(PeerSettings(parse_network("127.0.0.9/32"), binding_group="marketing"),),
    )
    spool = DirSpool(tmp_path)
    settings = make_settings(listeners=(listener,), relay_hosts=(parse_network("127.0.0.0/8"),))
    async with serving(settings, spool) as (_, port):
        for source in ("127.0.0.1", OUTSIDE):
            client = await RawClient.connect(port, source=source)
            await client.greet()
            assert (await send_message(client, b"Subject: x\r\n\r\nb\r\n.\r\n"))[0] == 250
            await client.close()
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.greet()
        data = b"X-Binding-Group: default\r\n\r\nb\r\n.\r\n"  # headers beat the peer
        assert (await send_message(client, data))[0] == 250
        await client.close()
    assert [m.binding_group for m in spool.messages] == ["bulk", "marketing", "default"]


async def test_received_and_message_id_are_added(tmp_path: Path) -> None:
    spool, _text = await _one(tmp_path, b"Subject: x\r\n\r\nbody\r\n.\r\n")
    [message] = spool.messages
    head, _, body = message.content.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"Received: from client.test ([127.0.0.1])"
    assert lines[1].startswith(b"\tby relay.test (relay) with ESMTP id ")
    assert lines[2].startswith(b"\tfor <rcpt@example.com>; ")
    assert lines[2].endswith(b"+0000")
    assert lines[-1].startswith(b"Message-ID: <") and lines[-1].endswith(b"@relay.test>")
    assert body == b"body\r\n"


async def test_existing_message_id_is_kept(tmp_path: Path) -> None:
    data = b"Message-ID: <mine@example.test>\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
    spool, _ = await _one(tmp_path, data)
    assert spool.messages[0].content.count(b"Message-ID") == 1
    assert b"Message-ID: <mine@example.test>\r\n" in spool.messages[0].content


async def test_more_than_50_received_headers_is_a_loop(tmp_path: Path) -> None:
    hop = b"Received: from a by b; Tue, 1 Jul 2025 12:00:00 +0000\r\n"
    spool, text = await _one(tmp_path, hop * 51 + b"Subject: x\r\n\r\nb\r\n.\r\n")
    assert text.startswith("554 5.4.0"), text
    assert spool.messages == []
    spool, text = await _one(tmp_path, hop * 50 + b"Subject: x\r\n\r\nb\r\n.\r\n")
    assert text.startswith("250"), text
    assert spool.messages[0].content.count(b"Received:") == 51
