"""The replies relay writes itself when it decides about mail without the receiver (or
fails on its own side): one table."""

from __future__ import annotations

import enum

from relay.outcome import Outcome, RecipientResult, Reply
from relay.schedule.jobs import Job


class Local(enum.Enum):
    ADAPTIVE_BLACKHOLE = "adaptive_blackhole"  # adaptive delivery holds the binding x domain
    BLACKHOLE_INTERNAL = "blackhole_internal"  # blackhole = internal: dropped as delivered
    BLACKHOLE_INLINE = "blackhole_inline"  # blackhole = true | inline: failed
    EXPIRED = "expired"  # never_attempt_expired_messages
    SEND_ERROR = "send_error"  # an unexpected error while sending
    OPEN_ERROR = "open_error"  # an unexpected error while opening a session
    OPERATOR_BOUNCE = "operator_bounce"  # bounced through the admin API (with a DSN)
    OPERATOR_DELETE = "operator_delete"  # deleted through the admin API (no DSN)


_REPLIES: dict[Local, tuple[Outcome, int, str, str]] = {
    Local.ADAPTIVE_BLACKHOLE: (Outcome.PERMANENT, 550, "5.7.1", "blackholed by adaptive delivery"),
    Local.BLACKHOLE_INTERNAL: (Outcome.DELIVERED, 250, "2.0.0", "blackholed by configuration"),
    Local.BLACKHOLE_INLINE: (Outcome.PERMANENT, 550, "5.7.1", "blackholed by configuration"),
    Local.EXPIRED: (Outcome.PERMANENT, 554, "5.4.7", "message expired before any attempt"),
    Local.SEND_ERROR: (Outcome.TEMPORARY, 451, "4.3.0", "local error"),
    Local.OPEN_ERROR: (Outcome.TEMPORARY, 451, "4.4.0", "local error"),
    Local.OPERATOR_BOUNCE: (Outcome.PERMANENT, 550, "5.0.0", "bounced by the operator"),
    Local.OPERATOR_DELETE: (Outcome.PERMANENT, 550, "5.0.0", "deleted by the operator"),
}


def local_reply(kind: Local, detail: str | None = None) -> Reply:
    """relay's own reply, e.g. 451 4.3.0 "local error: <detail>"."""
    _, code, enhanced, text = _REPLIES[kind]
    return Reply.make(code, enhanced, text if detail is None else f"{text}: {detail}")


def local_results(kind: Local, job: Job, detail: str | None = None) -> list[RecipientResult]:
    """The same local reply for each of the job's recipients."""
    outcome = _REPLIES[kind][0]
    reply = local_reply(kind, detail)
    return [RecipientResult(address, outcome, reply) for _, address, _ in job.recipients]
