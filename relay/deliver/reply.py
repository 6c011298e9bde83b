"""SMTP replies as data: parsing, enhanced status codes (RFC 3463), classification and
Momentum's response_transcode rewrite. Pure functions, no I/O."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
_DOLLAR = re.compile(r"\$(\d+)")
_REPLY_TEXT = re.compile(r"^(\d{3})(?:[ -](.*))?$", re.DOTALL)


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


def transcode(reply: Reply, pattern: str | None, replace: str | None) -> Reply:
    """Momentum's response_transcode: a 4xx/5xx reply (as "code text") that matches
    `pattern` is replaced by `replace`, with $0, $1... expanded from the match. The result
    is re-parsed, so a rewritten code changes the classification."""
    if pattern is None or replace is None or reply.code is None or reply.code < 400:
        return reply
    whole = f"{reply.code} {reply.text}"
    match = re.search(pattern, whole)
    if match is None:
        return reply

    groups: tuple[str | None, ...] = (match[0], *match.groups())

    def expand(ref: re.Match[str]) -> str:
        index = int(ref[1])
        return (groups[index] or "") if index < len(groups) else ref[0]

    rewritten = _DOLLAR.sub(expand, replace)
    parsed = _REPLY_TEXT.match(rewritten.strip())
    if parsed is None:
        # The replacement has no code of its own: keep the original code.
        return Reply.parse(reply.code, rewritten.strip(), local=reply.local)
    return Reply.parse(int(parsed[1]), parsed[2] or "", local=reply.local)
