"""A message as `OutboundConnection.send` takes it (relay.deliver.errors.MessageLike)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.esmtp import Esmtp

DEFAULT_CONTENT = b"From: a@sender.test\r\nSubject: test\r\n\r\nHello.\r\n"


@dataclass(frozen=True)
class TestMessage:
    __test__ = False  # not a pytest class

    message_id: str
    sender: str
    recipients: Sequence[str]
    content: bytes
    client: tuple[str, str | None] | None = None
    esmtp: Esmtp | None = None
    indexes: Sequence[int] = ()


def make_message(
    *recipients: str,
    content: bytes = DEFAULT_CONTENT,
    sender: str = "a@sender.test",
    message_id: str = "m1",
    client: tuple[str, str | None] | None = None,
    esmtp: Esmtp | None = None,
) -> TestMessage:
    return TestMessage(
        message_id,
        sender,
        tuple(recipients),
        content,
        client,
        esmtp,
        tuple(range(len(recipients))),
    )
