"""The ESMTP envelope parameters a message keeps from injection to delivery and its DSNs:
DSN (RFC 3461: RET, ENVID, NOTIFY, ORCPT), SMTPUTF8 (RFC 6531), REQUIRETLS (RFC 8689).

Pure data and the xtext codec (RFC 3461 §4), shared by injection (which checks them),
the spool (which stores them), delivery (which passes them on) and DSNs (which report them).
A message without any of them has no `Esmtp` at all (None): the common case costs nothing.
ENVID and ORCPT are kept as received (xtext), so they are passed on byte for byte.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "NOTIFY_KEYWORDS",
    "Esmtp",
    "XtextError",
    "notify_value",
    "xtext_decode",
    "xtext_encode",
]

NOTIFY_KEYWORDS = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAX_ENVID = 100  # RFC 3461 §4.4: ENVID at most 100 characters
MAX_ORCPT = 500  # RFC 3461 §4.2: ORCPT at most 500 characters

# xchar: "!" to "~" except "+" and "="; hexchar: "+" and two upper-case hex digits.
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")


class XtextError(ValueError):
    """Not valid xtext (RFC 3461 §4): the message says why."""


def xtext_decode(text: str) -> str:
    """The text an xtext stands for; raises XtextError."""
    if _XTEXT.fullmatch(text) is None:
        raise XtextError(f"not valid xtext: {text[:40]!r}")
    if "+" not in text:
        return text
    return _HEXCHAR.sub(lambda m: chr(int(m[1], 16)), text)


def xtext_encode(text: str) -> str:
    """xtext for ASCII text: "+", "=" and anything outside "!".."~" as "+XX"."""
    return "".join(
        c if "!" <= c <= "~" and c not in "+=" else f"+{ord(c):02X}"
        for c in text.encode("utf-8").decode("latin-1")
    )


def notify_value(value: str) -> str | None:
    """NOTIFY's value made canonical ("NEVER", or a subset of "SUCCESS,FAILURE,DELAY" in
    that order), or None if it is not valid (RFC 3461 §4.1)."""
    words = value.upper().split(",")
    if words == ["NEVER"]:
        return "NEVER"
    if not words or any(w not in NOTIFY_KEYWORDS for w in words) or len(set(words)) != len(words):
        return None
    return ",".join(w for w in ("SUCCESS", "FAILURE", "DELAY") if w in words)


def orcpt_valid(value: str) -> bool:
    """ORCPT=addr-type;xtext (RFC 3461 §4.2), within its length limit."""
    addr_type, semicolon, xtext = value.partition(";")
    if not semicolon or len(value) > MAX_ORCPT or _ADDR_TYPE.fullmatch(addr_type) is None:
        return False
    try:
        xtext_decode(xtext)
    except XtextError:
        return False
    return bool(xtext)


@dataclass(frozen=True, slots=True)
class Esmtp:
    """A message's ESMTP parameters; per-recipient values by envelope index (() when no
    recipient has one)."""

    ret: str | None = None  # "FULL" | "HDRS"
    envid: str | None = None  # xtext, as received
    smtputf8: bool = False
    requiretls: bool = False
    notify: tuple[str | None, ...] = ()  # canonical NOTIFY value per recipient, or None
    orcpt: tuple[str | None, ...] = ()  # "addr-type;xtext" per recipient, or None

    def notify_of(self, index: int) -> str | None:
        notify = self.notify
        return notify[index] if index < len(notify) else None

    def orcpt_of(self, index: int) -> str | None:
        orcpt = self.orcpt
        return orcpt[index] if index < len(orcpt) else None

    def keeping(self, indexes: Sequence[int]) -> Esmtp:
        """The parameters for only the recipients at `indexes` (renumbered in that order)."""
        if not (self.notify or self.orcpt):
            return self
        return dataclasses.replace(
            self,
            notify=tuple(self.notify_of(i) for i in indexes) if self.notify else (),
            orcpt=tuple(self.orcpt_of(i) for i in indexes) if self.orcpt else (),
        )

    def wants(self, index: int, what: str, default: bool) -> bool:
        """Does the sender want a `what` ("SUCCESS", "FAILURE", "DELAY") notice for this
        recipient? Without NOTIFY, `default` (relay's own choice, RFC 3461 §4.1)."""
        notify = self.notify_of(index)
        if notify is None:
            return default
        return what in notify.split(",")

    @property
    def envid_text(self) -> str | None:
        """ENVID decoded (for Original-Envelope-Id)."""
        return None if self.envid is None else xtext_decode(self.envid)

    def original_recipient(self, index: int) -> str | None:
        """ORCPT as an Original-Recipient value: "addr-type;address" decoded."""
        orcpt = self.orcpt_of(index)
        if orcpt is None:
            return None
        addr_type, _, xtext = orcpt.partition(";")
        return f"{addr_type};{xtext_decode(xtext)}"

    def mail_options(self, dsn: bool) -> list[str]:
        """The MAIL parameters to pass on: RET/ENVID when the next hop offers DSN."""
        options = []
        if dsn:
            if self.ret is not None:
                options.append(f"RET={self.ret}")
            if self.envid is not None:
                options.append(f"ENVID={self.envid}")
        return options

    def rcpt_options(self, index: int) -> list[str]:
        """The RCPT parameters to pass on to a next hop that offers DSN."""
        options = []
        notify = self.notify_of(index)
        if notify is not None:
            options.append(f"NOTIFY={notify}")
        orcpt = self.orcpt_of(index)
        if orcpt is not None:
            options.append(f"ORCPT={orcpt}")
        return options
