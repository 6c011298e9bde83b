"""A job is one message's pending recipients for one destination domain."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from relay.esmtp import Esmtp
from relay.spool.model import Envelope, RecipientState


@dataclass(slots=True, eq=False)  # one job is one object: the queue core tracks it by identity
class Job:
    message_id: str
    sender: str
    group: str
    binding: str | None  # an explicit binding (X-Binding), else chosen at dispatch
    domain: str
    received_at: float
    recipients: list[tuple[int, str, int]]  # (index in the envelope, address, attempts)
    due: float = 0.0
    # Delay DSNs sent, by recipient; None (the common case) saves a dict per queued job.
    notices: dict[str, int] | None = None
    client: tuple[str, str | None] | None = None  # the injecting client, for XCLIENT
    esmtp: Esmtp | None = None  # the message's DSN / SMTPUTF8 / REQUIRETLS parameters
    tenant: str | None = None  # the message's tenant and campaign, if it has them
    campaign: str | None = None
    priority: str | None = None  # "transactional" | "bulk"; None: the tenant's class (fair.py)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.domain)


def domain_of(address: str) -> str:
    """The recipient's domain, interned: 100,000 queued jobs share one string per domain."""
    _, at, domain = address.rpartition("@")
    return sys.intern(domain.lower().rstrip(".")) if at else ""


def jobs_for(envelope: Envelope) -> list[Job]:
    """Split a spooled message's pending recipients by domain and due time."""
    groups: dict[tuple[str, float], Job] = {}
    for index, rcpt in enumerate(envelope.recipients):
        if rcpt.state is not RecipientState.PENDING:
            continue
        domain = domain_of(rcpt.address)
        key = (domain, rcpt.next_attempt)
        job = groups.get(key)
        if job is None:
            job = Job(
                envelope.message_id,
                sys.intern(envelope.sender),
                sys.intern(envelope.binding_group),
                envelope.binding,
                domain,
                envelope.received_at,
                [],
                due=rcpt.next_attempt,
                client=envelope.client,
                esmtp=envelope.esmtp,
                tenant=envelope.tenant,
                campaign=envelope.campaign,
                priority=envelope.priority,
            )
            groups[key] = job
        job.recipients.append((index, rcpt.address, rcpt.attempts))
        if rcpt.delay_notices:
            if job.notices is None:
                job.notices = {}
            job.notices[rcpt.address] = rcpt.delay_notices
    return list(groups.values())
