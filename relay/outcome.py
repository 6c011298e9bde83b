"""What a delivery attempt comes to, as data every stage shares: the SMTP `Reply` (code,
RFC 3463 enhanced status, text, whether relay made it up), its `Outcome` class, the far end
(`Remote`) and SMTP `Phase`, and the `RecipientResult` per recipient. Delivery produces them
(relay/deliver/reply_stream.py is the one parser of the wire); the scheduler, dispose, adaptive
delivery, DSNs and the event log read them; nobody flattens a reply to a string and parses
it again (the spool and the event log keep `str(reply)`). Pure, imports nothing of relay's."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
_LINE = re.compile(r"^(\d{3})(?:[ -](.*))?$", re.DOTALL)


class Outcome(enum.Enum):
    """What happened to one recipient; only the scheduler turns it into queue state."""

    DELIVERED = "delivered"
    TEMPORARY = "temporary"  # 4xx, timeout, connection lost: retry later
    PERMANENT = "permanent"  # 5xx: bounce
    NOT_ATTEMPTED = "not_attempted"  # a per-connection cap stopped us: requeue, no failure


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 status code such as 5.1.1."""

    klass: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"

    @classmethod
    def parse(cls, text: str) -> EnhancedStatus | None:
        match = _ENHANCED.match(text)
        if match is None:
            return None
        return cls(int(match[1]), int(match[2]), int(match[3]))


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply. `code` is None when the server sent no valid three-digit code.

    `text` is the reply text without the code (lines joined by newlines); `local` marks a
    reply relay made up itself (timeout, connection lost, local policy), never the peer's.
    """

    code: int | None
    text: str
    enhanced: EnhancedStatus | None = None
    local: bool = False

    @classmethod
    def parse(cls, code: int | None, text: str, *, local: bool = False) -> Reply:
        valid = code if code is not None and 200 <= code <= 599 else None
        return cls(valid, text, EnhancedStatus.parse(text) if valid else None, local)

    @classmethod
    def make(cls, code: int, enhanced: str, text: str) -> Reply:
        """A reply relay generates itself, e.g. `Reply.make(451, "4.4.2", "timeout")`."""
        return cls.parse(code, f"{enhanced} {text}", local=True)

    @classmethod
    def parse_line(cls, line: str, *, local: bool = False) -> Reply | None:
        """A reply written out as one "code text" line (response_transcode's replacement, a
        test's fixture); None without a leading three-digit code."""
        match = _LINE.match(line.strip())
        if match is None:
            return None
        return cls.parse(int(match[1]), match[2] or "", local=local)

    @property
    def message(self) -> str:
        """The text after the enhanced status code, on one line: what reply rules and the
        bounce classifier read ("no such user" of "550 5.1.1 no such user")."""
        text = self.text
        if self.enhanced is not None:
            found = _ENHANCED.match(text)
            if found is not None:
                text = text[found.end() :]
        return text.replace("\n", " / ").strip()

    @property
    def outcome(self) -> Outcome:
        if self.code is None:
            return Outcome.TEMPORARY
        if 200 <= self.code < 300:
            return Outcome.DELIVERED
        if 500 <= self.code < 600:
            return Outcome.PERMANENT
        return Outcome.TEMPORARY

    @property
    def is_positive(self) -> bool:
        return self.code is not None and 200 <= self.code < 400

    def __str__(self) -> str:
        code = "" if self.code is None else f"{self.code} "
        return f"{code}{self.text}".replace("\n", " / ")


class Phase(enum.Enum):
    """The step of an SMTP delivery a reply answers (or a failure happened in)."""

    RESOLVE = "resolve"
    GATE = "gate"  # relay's own per-host limit (host_gate) refused the destination
    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    XCLIENT = "xclient"  # passing the injecting client on (Postfix XCLIENT)
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    RSET = "rset"
    QUIT = "quit"
    CONTENT = "content"  # local content checks (8-bit conversion)


@dataclass(frozen=True, slots=True)
class Remote:
    """The far end of a connection: MX host name, IP and port."""

    mx_host: str
    ip: str
    port: int

    def __str__(self) -> str:
        ip = f"[{self.ip}]"
        return f"{self.mx_host} {ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What one attempt did for one recipient: the reply it got (the peer's, or relay's own
    with `reply.local`), from which host, in which phase (None: relay decided without a
    connection, e.g. a blackhole)."""

    recipient: str
    outcome: Outcome
    reply: Reply
    remote: Remote | None = None
    phase: Phase | None = None
    # The next hop offers DSN and was given the recipient's NOTIFY: success is its to report
    # (RFC 3461 4.1), relay sends no success DSN of its own.
    dsn_passed: bool = False

    @property
    def local(self) -> bool:
        """relay's own failure (timeout, limit): never the receiver's verdict."""
        return self.reply.local
