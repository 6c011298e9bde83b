"""Bounce classification: (reply code, enhanced status code, reply text) -> Momentum's bounce
classification code (bounce_logger.classification.codes.md). Pure functions, no I/O.

Three passes, first answer wins:
1. ordered regular expressions over the reply text (what big receivers actually say);
2. the enhanced status code (RFC 3463);
3. the basic reply code: 4xx -> Transient Failure, 5xx -> Undetermined.

The rules are data (`TEXT_RULES`, `ENHANCED_RULES`) so they can be read, tested and extended.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ENHANCED_RULES",
    "TEXT_RULES",
    "BounceClass",
    "Classification",
    "TextRule",
    "category",
    "classify",
]

Category = Literal["Undetermined", "Hard", "Soft", "Admin", "Block"]


class BounceClass(enum.IntEnum):
    """Table 35.16, Bounce Classification Codes."""

    UNDETERMINED = 1
    INVALID_RECIPIENT = 10
    SOFT_BOUNCE = 20
    DNS_FAILURE = 21
    MAILBOX_FULL = 22
    TOO_LARGE = 23
    TIMEOUT = 24
    ADMIN_FAILURE = 25
    NO_RCPT = 30
    GENERIC = 40
    MAIL_BLOCK = 50
    SPAM_BLOCK = 51
    SPAM_CONTENT = 52
    PROHIBITED_ATTACHMENT = 53
    RELAYING_DENIED = 54
    AUTO_REPLY = 60
    TRANSIENT = 70
    SUBSCRIBE = 80
    UNSUBSCRIBE = 90
    CHALLENGE_RESPONSE = 100


_CATEGORIES: dict[BounceClass, Category] = {
    BounceClass.UNDETERMINED: "Undetermined",
    BounceClass.INVALID_RECIPIENT: "Hard",
    BounceClass.SOFT_BOUNCE: "Soft",
    BounceClass.DNS_FAILURE: "Soft",
    BounceClass.MAILBOX_FULL: "Soft",
    BounceClass.TOO_LARGE: "Soft",
    BounceClass.TIMEOUT: "Soft",
    BounceClass.ADMIN_FAILURE: "Admin",
    BounceClass.NO_RCPT: "Hard",
    BounceClass.GENERIC: "Soft",
    BounceClass.MAIL_BLOCK: "Block",
    BounceClass.SPAM_BLOCK: "Block",
    BounceClass.SPAM_CONTENT: "Block",
    BounceClass.PROHIBITED_ATTACHMENT: "Block",
    BounceClass.RELAYING_DENIED: "Block",
    BounceClass.AUTO_REPLY: "Soft",
    BounceClass.TRANSIENT: "Soft",
    BounceClass.SUBSCRIBE: "Admin",
    BounceClass.UNSUBSCRIBE: "Hard",
    BounceClass.CHALLENGE_RESPONSE: "Soft",
}


def category(bounce_class: BounceClass) -> Category:
    return _CATEGORIES[bounce_class]


@dataclass(frozen=True, slots=True)
class Classification:
    bounce_class: BounceClass
    rule: str  # which rule decided: "text:<name>", "enhanced:<code>", "code:4xx", ...

    @property
    def code(self) -> int:
        return int(self.bounce_class)

    @property
    def category(self) -> Category:
        return _CATEGORIES[self.bounce_class]

    @property
    def name(self) -> str:
        return self.bounce_class.name.replace("_", " ").title()


ReplyClass = Literal["any", "4", "5"]


@dataclass(frozen=True, slots=True)
class TextRule:
    name: str
    pattern: re.Pattern[str]
    bounce_class: BounceClass
    replies: ReplyClass = "any"  # only 4xx, only 5xx, or any reply (and no reply at all)


def _rule(
    name: str, pattern: str, bounce_class: BounceClass, replies: ReplyClass = "any"
) -> TextRule:
    return TextRule(name, re.compile(pattern, re.IGNORECASE), bounce_class, replies)


B = BounceClass

# Order matters: the more specific rule comes first (a "blocked ... spam" reply is a spam
# block, a "mailbox full" reply that mentions the user is still mailbox full).
TEXT_RULES: tuple[TextRule, ...] = (
    _rule("auto_reply", r"\b(out of (the )?office|auto[- ]?reply|vacation)\b", B.AUTO_REPLY),
    _rule(
        "challenge",
        r"challenge[- ]response|verify (you are|that you are) human",
        B.CHALLENGE_RESPONSE,
    ),
    _rule(
        "relaying",
        r"relay(ing)? (access )?(denied|not (permitted|allowed))|"
        r"not permitted to relay|unable to relay|we do not relay",
        B.RELAYING_DENIED,
    ),
    _rule(
        "mailbox_full",
        r"(mail ?box|inbox|account|user)( is)? (is )?(full|over ?quota)|"
        r"over (the )?(storage )?quota|quota exceeded|exceeded (its|their|the) "
        r"(storage|quota)|insufficient (system )?storage|out of storage",
        B.MAILBOX_FULL,
    ),
    _rule(
        "too_large",
        r"(message|mail|size) (is )?too (large|big)|exceeds? (the )?"
        r"(maximum|size|message size)|message size exceeds|size limit",
        B.TOO_LARGE,
    ),
    _rule(
        "attachment",
        r"(attachment|file type|extension)s? (is |are )?(not allowed|"
        r"prohibited|blocked|rejected)|(prohibited|dangerous|executable) (attachment|"
        r"content|file)",
        B.PROHIBITED_ATTACHMENT,
    ),
    _rule(
        "spam_block",
        r"block ?list|black ?list|blocked using|listed (at|in|on|by)|"
        r"spamhaus|spamcop|barracuda|\bRBL\b|DNSBL|\[TS0[1-3]\]|"
        r"poor reputation|bad reputation|reputation of",
        B.SPAM_BLOCK,
    ),
    _rule(
        "spam_content",
        r"spam|unsolicited|junk mail|bulk mail|content (was )?rejected|"
        r"message content|phish|virus|malware",
        B.SPAM_CONTENT,
    ),
    _rule(
        "invalid_recipient",
        r"user(name)? (unknown|not found|does not exist)|unknown user|"
        r"no such (user|mailbox|recipient|address)|(recipient|address|mailbox|account)"
        r"( address)? (is )?(unknown|invalid|unavailable|not found|does not exist|"
        r"doesn'?t exist|disabled|inactive|rejected)|invalid (recipient|mailbox|address)|"
        r"not our customer|mailbox not found|recipient not found|unrouteable address|"
        r"undeliverable address|does not exist|doesn'?t have an? .{0,40}account",
        B.INVALID_RECIPIENT,
        "5",
    ),
    _rule("no_rcpt", r"no (valid )?recipients?( given| specified)?$|need rcpt", B.NO_RCPT),
    _rule(
        "dns",
        r"(host|domain) (not found|unknown)|unknown (host|domain)|"
        r"name (service|server) (error|failure)|no mx|dns (error|failure)|"
        r"domain (does not exist|not exists?)",
        B.DNS_FAILURE,
    ),
    _rule("timeout", r"timed? ?out|timeout", B.TIMEOUT),
    _rule(
        "rate",
        r"too many (concurrent |simultaneous |smtp )?(connections|sessions|messages|"
        r"mails|emails|recipients)|rate ?limit|throttl|try (again )?later|"
        r"temporarily (deferred|rejected|unavailable)|unusual (rate|volume)|"
        r"resources temporarily|\[TS04\]|\[TSS0\d\]",
        B.TRANSIENT,
        "4",
    ),
    _rule(
        "mail_block",
        r"\bblocked\b|\bbanned\b|access denied|not allowed to send|refused|"
        r"policy (violation|rejection|reasons)|rejected (by|for) policy|"
        r"(spf|dkim|dmarc)\b.*(fail|reject)|authentication (failed|required)|"
        r"unauthenticated",
        B.MAIL_BLOCK,
    ),
    _rule("unsubscribe", r"\bunsubscribe\b", B.UNSUBSCRIBE),
    _rule("subscribe", r"\bsubscribe\b", B.SUBSCRIBE),
)

# RFC 3463 enhanced status codes, first match wins; "x" stands for any class (4 or 5).
ENHANCED_RULES: tuple[tuple[str, BounceClass], ...] = (
    ("5.1.0", B.INVALID_RECIPIENT),
    ("5.1.1", B.INVALID_RECIPIENT),
    ("5.1.3", B.INVALID_RECIPIENT),
    ("5.1.6", B.INVALID_RECIPIENT),
    ("5.1.10", B.INVALID_RECIPIENT),
    ("5.2.1", B.INVALID_RECIPIENT),
    ("x.1.2", B.DNS_FAILURE),
    ("x.4.4", B.DNS_FAILURE),
    ("x.2.2", B.MAILBOX_FULL),
    ("x.3.1", B.MAILBOX_FULL),
    ("x.2.3", B.TOO_LARGE),
    ("x.3.4", B.TOO_LARGE),
    ("x.4.7", B.TIMEOUT),
    ("x.4.1", B.TIMEOUT),
    ("x.4.2", B.TIMEOUT),
    ("5.7.1", B.MAIL_BLOCK),
    ("5.7.0", B.MAIL_BLOCK),
    ("x.7.23", B.MAIL_BLOCK),
    ("x.7.25", B.MAIL_BLOCK),
    ("x.7.26", B.MAIL_BLOCK),
    ("x.7.27", B.MAIL_BLOCK),
    ("x.7.28", B.SPAM_BLOCK),
    ("x.7.6", B.PROHIBITED_ATTACHMENT),
    ("x.7.350", B.RELAYING_DENIED),
    ("5.5.3", B.GENERIC),
    ("5.1.7", B.GENERIC),
    ("5.1.8", B.GENERIC),
)

_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
_IN_TEXT = re.compile(r"(?:^|\s)([245]\.\d{1,3}\.\d{1,3})(?=\s|$|[,;:])")


def _reply_digit(code: int | None) -> str | None:
    if code is None or not 200 <= code <= 599:
        return None
    return str(code // 100)


def _normal_enhanced(enhanced: str | None, text: str) -> str | None:
    if enhanced:
        match = _ENHANCED.fullmatch(enhanced.strip())
        if match:
            return f"{match[1]}.{int(match[2])}.{int(match[3])}"
    found = _IN_TEXT.search(text)
    if found:
        return _normal_enhanced(found[1], "")
    return None


def classify(code: int | None, enhanced: str | None = None, text: str = "") -> Classification:
    """Classify one failure reply. `code` is None when there was no reply at all (a timeout
    or a dropped connection: pass the translated error text)."""
    digit = _reply_digit(code)
    if digit == "2":
        return Classification(B.UNDETERMINED, "code:2xx")
    for rule in TEXT_RULES:
        if rule.replies != "any" and rule.replies != digit:
            continue
        if rule.pattern.search(text):
            return Classification(rule.bounce_class, f"text:{rule.name}")
    status = _normal_enhanced(enhanced, text)
    if status is not None:
        klass, _, detail = status.partition(".")
        for pattern, bounce_class in ENHANCED_RULES:
            if pattern == status or (pattern.startswith("x.") and pattern[2:] == detail):
                return Classification(bounce_class, f"enhanced:{status}")
        if klass == "4":
            return Classification(B.TRANSIENT, f"enhanced:{status}")
    if digit == "4":
        return Classification(B.TRANSIENT, "code:4xx")
    if digit == "5":
        return Classification(B.UNDETERMINED, "code:5xx")
    return Classification(B.UNDETERMINED, "none")
