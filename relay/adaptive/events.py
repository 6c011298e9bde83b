"""What the adaptive engine asks the scheduler to do, and what it mails operators.

Events are frozen dataclasses; the scheduler applies them (new live option value, suspend or
resume a binding x domain, blackhole) and logs each with `describe()`.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any, Literal

from relay.config import values as v

__all__ = [
    "Adjust",
    "Blackhole",
    "Event",
    "Hold",
    "Notification",
    "OutcomeKind",
    "Resume",
    "Suspend",
]


class OutcomeKind(enum.Enum):
    """A real remote outcome of one delivery attempt. There is deliberately no "local"
    member: relay's own waits and refusals (connection caps, throttles, host gates, content
    checks, a suspension) are not the receiver's doing and must never be recorded."""

    DELIVERED = "delivered"  # 2xx to the end of DATA
    TEMPORARY = "temporary"  # a 4xx reply: a rejection
    PERMANENT = "permanent"  # a 5xx reply: a rejection
    TIMEOUT = "timeout"  # the peer did not answer in time
    CONNECTION = "connection"  # the peer refused, reset or closed the connection, or TLS failed

    @property
    def rejection(self) -> bool:
        return self in (OutcomeKind.TEMPORARY, OutcomeKind.PERMANENT)


def _show(value: Any) -> str:
    return v.display(value)


@dataclass(frozen=True, slots=True)
class Adjust:
    """Set the live value of `option` (a core option name) for this binding x domain."""

    binding: str
    domain: str
    option: str
    old: Any
    new: Any
    reason: str
    at: float
    kind: Literal["throttle"] = "throttle"

    def describe(self) -> str:
        return (
            f"adaptive: {self.binding}/{self.domain} {self.option} "
            f"{_show(self.old)} -> {_show(self.new)} ({self.reason})"
        )


@dataclass(frozen=True, slots=True)
class Suspend:
    """Send nothing from `binding` to `domain` until `until` (unix time)."""

    binding: str
    domain: str
    until: float
    reason: str
    at: float
    kind: Literal["suspension"] = "suspension"

    def describe(self) -> str:
        return (
            f"adaptive: {self.binding}/{self.domain} suspended for "
            f"{_show(round(self.until - self.at))}s until {_clock(self.until)} ({self.reason})"
        )


@dataclass(frozen=True, slots=True)
class Blackhole:
    """Accept and discard mail from `binding` to `domain` until `until`."""

    binding: str
    domain: str
    until: float
    reason: str
    at: float
    kind: Literal["blackhole"] = "blackhole"

    def describe(self) -> str:
        return (
            f"adaptive: {self.binding}/{self.domain} blackholed until {_clock(self.until)} "
            f"({self.reason})"
        )


@dataclass(frozen=True, slots=True)
class Resume:
    """A suspension or blackhole ended (expired, or an operator lifted it)."""

    binding: str
    domain: str
    reason: str  # "expired" | "operator"
    at: float
    ended: Literal["suspension", "blackhole"] = "suspension"
    kind: Literal["resume"] = "resume"

    def describe(self) -> str:
        return f"adaptive: {self.binding}/{self.domain} {self.ended} lifted ({self.reason})"


Event = Adjust | Suspend | Blackhole | Resume


@dataclass(frozen=True, slots=True)
class Hold:
    """A suspension or blackhole in force."""

    binding: str
    domain: str
    kind: Literal["suspension", "blackhole"]
    since: float
    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert mail: the scheduler sends it from `sender` to `recipients`."""

    binding: str
    domain: str
    kind: str  # "throttle" | "suspension" | "blackhole"
    sender: str | None
    recipients: tuple[str, ...]
    subject: str
    body: str
    at: float
    suppressed: int  # alerts of this kind held back since the previous one


def _clock(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def notification(
    events: tuple[Event, ...], sender: str | None, recipients: tuple[str, ...], suppressed: int
) -> Notification:
    first = events[0]
    subject = f"[relay adaptive] {first.kind}: {first.binding} -> {first.domain}"
    lines = [
        f"Adaptive delivery acted on binding {first.binding!r}, domain {first.domain!r}",
        f"at {_clock(first.at)}:",
        "",
        *(f"  {event.describe().removeprefix('adaptive: ')}" for event in events),
    ]
    if suppressed:
        lines += ["", f"{suppressed} earlier {first.kind} alert(s) for this pair were held back."]
    lines += ["", "-- relay adaptive delivery"]
    return Notification(
        first.binding,
        first.domain,
        first.kind,
        sender,
        recipients,
        subject,
        "\n".join(lines) + "\n",
        first.at,
        suppressed,
    )
