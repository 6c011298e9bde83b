"""LMTP (RFC 2033): the SMTP session with LHLO, and after the final dot one reply per
recipient accepted at RCPT, in RCPT order (section 4.2). Pure: `data_replies` pairs those
replies with the recipients.

    channel.write(body, len(accepted), Phase.DATA)            # a reply owed per recipient
    ... read up to len(accepted) replies, stop at the first failure to read ...
    for index, reply in data_replies(accepted, replies, lost):  # lost: for the unanswered
        settle(index, reply)

A recipient whose reply never came (timeout, connection lost) gets the reply relay made up
for the failure, a temporary one: the LMTP server may or may not have delivered it, and a
duplicate is better than a loss. The replies that did come are final for their recipients.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.outcome import Reply

__all__ = ["LHLO", "data_replies"]

LHLO = b"LHLO"


def data_replies(
    accepted: Sequence[int], replies: Sequence[Reply], lost: Reply
) -> list[tuple[int, Reply]]:
    """Each accepted recipient's reply after the final dot: the n-th reply for the n-th
    recipient accepted at RCPT; `lost` for those left without one. Extra replies (a server
    out of step) are ignored."""
    paired = list(zip(accepted, replies, strict=False))
    paired.extend((index, lost) for index in accepted[len(paired) :])
    return paired
