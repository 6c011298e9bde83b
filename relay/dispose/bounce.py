"""Turn failed recipients into a DSN spooled as relay's own message, before they are final.

Never a DSN for mail from the null sender (no bounce of a bounce): those failures go to
`mdn_failures_notify` when it is set, else they are only logged. Never a DSN addressed to
relay's own mailer-daemon address.

The sender's DSN parameters (RFC 3461) decide per recipient: NOTIFY=NEVER, or a NOTIFY
without FAILURE / DELAY / SUCCESS, means no such notice (without NOTIFY: failures always,
delays as generate_delay_dsn says, successes never); RET=HDRS returns the headers only,
RET=FULL the whole message (without RET: bounces_inline_original; a REQUIRETLS message's
DSN returns its headers only, since the DSN itself does not travel with REQUIRETLS); ENVID
and ORCPT come back as Original-Envelope-Id and Original-Recipient. Success DSNs
("relayed") are asked for only for recipients whose next hop did not offer DSN (the
scheduler decides that: a next hop given NOTIFY reports success itself, RFC 3461 4.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from relay.clock import Clock
from relay.dispose.decide import EXPIRED, Failed, Notice
from relay.dispose.dsn import DsnRecipient, build_dsn
from relay.esmtp import Esmtp
from relay.spool.model import Envelope, NewMessage, Recipient

log = logging.getLogger("relay.dispose")
EventSink = Callable[[str, dict[str, object]], None]


class BouncedMessage(Protocol):
    """The message whose recipients failed (the scheduler's job for one domain)."""

    @property
    def message_id(self) -> str: ...

    @property
    def sender(self) -> str: ...

    @property
    def received_at(self) -> float: ...

    @property
    def esmtp(self) -> Esmtp | None: ...

    @property
    def tenant(self) -> str | None: ...

    @property
    def campaign(self) -> str | None: ...


# What NOTIFY keyword each DSN action needs, and whether it is wanted without NOTIFY.
_NOTIFY = {"failed": ("FAILURE", True), "delayed": ("DELAY", True), "relayed": ("SUCCESS", False)}
_RET = {"FULL": "full", "HDRS": "headers"}


class BounceOptions(Protocol):
    """The options that shape a DSN (the binding x domain's route settings)."""

    @property
    def generate_bounces(self) -> bool: ...

    @property
    def mdn_failures_notify(self) -> str | None: ...

    @property
    def mailerdaemon(self) -> str | None: ...

    @property
    def bounces_inline_original(self) -> str: ...


class SpoolStore(Protocol):
    async def store_reporting(
        self, messages: Sequence[NewMessage], about: str, updates: Sequence[Recipient]
    ) -> tuple[list[Envelope], bool]: ...

    async def load(self, message_id: str) -> bytes: ...


class Bouncer:
    def __init__(
        self,
        spool: SpoolStore,
        submit: Callable[[Envelope], None],
        hostname: str,
        clock: Clock,
        events: EventSink,
        group: str = "default",
    ) -> None:
        self.spool = spool
        self.submit = submit
        self.hostname = hostname
        self.clock = clock
        self.events = events
        self.group = group
        self.sent = 0
        self.suppressed = 0

    def from_address(self, policy: BounceOptions | None) -> str:
        if policy is not None and policy.mailerdaemon:
            return policy.mailerdaemon
        return f"MAILER-DAEMON@{self.hostname}"

    async def __call__(
        self,
        job: BouncedMessage,
        notices: Sequence[Notice],
        policy: BounceOptions | None,
        *,
        journal: Sequence[Recipient] = (),
    ) -> bool:
        """Make the DSN for each notice of one attempt (or say why none is sent) and spool
        them all with `journal`, the message's recipient outcomes, in one commit: a crash
        keeps all or none, so no DSN is sent twice and none is lost. Returns whether
        `journal` was stored (False: no DSN was sent, the caller journals)."""
        made: list[tuple[str, str, list[Failed], NewMessage]] = []
        original: bytes | None = None
        for action, failures in notices:
            addressed = self._addressed(job, failures, policy, action)
            if addressed is None:
                continue
            to, wanted = addressed
            if original is None:
                original = await self.spool.load(job.message_id)
            content = self._content(job, wanted, policy, action, to, original)
            made.append(
                (
                    action,
                    to,
                    wanted,
                    NewMessage("", (to,), self.group, None, content, self.clock.now()),
                )
            )
        if not made:
            return False
        envelopes, _ = await self.spool.store_reporting(
            [dsn for *_, dsn in made], job.message_id, journal
        )
        for (action, to, failures, _), envelope in zip(made, envelopes, strict=True):
            self.sent += 1
            self.events(
                "dsn",
                {
                    "message_id": job.message_id,
                    "dsn_id": envelope.message_id,
                    "to": to,
                    "action": action,
                    "recipients": [f.address for f in failures],
                },
            )
            self.submit(envelope)
        return True

    def _addressed(
        self, job: BouncedMessage, failures: list[Failed], policy: BounceOptions | None, action: str
    ) -> tuple[str, list[Failed]] | None:
        """Who the notice goes to and the recipients it reports; None (logged) when none is
        sent."""
        if policy is not None and not policy.generate_bounces:
            self._suppress(job, "generate_bounces is off")
            return None
        esmtp = job.esmtp
        if esmtp is not None:
            keyword, default = _NOTIFY.get(action, ("FAILURE", True))
            failures = [f for f in failures if esmtp.wants(f.index, keyword, default)]
            if not failures:
                self._suppress(job, f"NOTIFY asked for no {action} notice")
                return None
        to = job.sender
        if not to:
            notify = policy.mdn_failures_notify if policy is not None else None
            if not notify:
                self._suppress(job, "the message came from the null sender")
                return None
            to = notify
        if to.lower() == self.from_address(policy).lower():
            self._suppress(job, "the DSN would go to relay's own mailer-daemon")
            return None
        return to, failures

    def _content(
        self,
        job: BouncedMessage,
        failures: list[Failed],
        policy: BounceOptions | None,
        action: str,
        to: str,
        original: bytes,
    ) -> bytes:
        esmtp = job.esmtp
        return build_dsn(
            original=original,
            original_sender=to,
            original_id=job.message_id,
            received_at=job.received_at,
            failures=[
                DsnRecipient(
                    f.address,
                    f.reply,
                    action=action,
                    status=EXPIRED if f.expired and action == "failed" else None,
                    original_recipient=(
                        None if esmtp is None else esmtp.original_recipient(f.index)
                    ),
                )
                for f in failures
            ],
            reporting_mta=self.hostname,
            from_address=self.from_address(policy),
            inline=_inline(esmtp, policy),
            now=self.clock.now(),
            envelope_id=None if esmtp is None else esmtp.envid_text,
            tenant=job.tenant,
            campaign=job.campaign,
        )

    def _suppress(self, job: BouncedMessage, why: str) -> None:
        self.suppressed += 1
        log.info("no DSN for %s: %s", job.message_id, why)
        self.events("dsn_suppressed", {"message_id": job.message_id, "reason": why})


def _inline(esmtp: Esmtp | None, policy: BounceOptions | None) -> str:
    """How much of the original the DSN returns: RET when the sender gave it, else the
    bounces_inline_original option."""
    if esmtp is not None and esmtp.requiretls:
        return "headers"  # RFC 8689 5: a DSN need not carry what had to travel encrypted
    if esmtp is not None and esmtp.ret in _RET:
        return _RET[esmtp.ret]
    return policy.bounces_inline_original if policy is not None else "headers"
