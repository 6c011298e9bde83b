"""Every SMTP reply the injection server chooses, in one place.

Choices worth knowing (RFC 5321, RFC 3463 enhanced codes):
- address syntax and length (local part > 64, domain > 255, path > 256): 553 5.1.3
- source routes (`<@a:b@c>`): 553 5.1.3 whoever the client is
- relaying by a client outside relay_hosts and not authenticated: 550 5.7.1
- too many recipients: 452 4.5.3 (each RCPT past the limit)
- message too big (SIZE= at MAIL, or during DATA / BDAT): 552 5.3.4
- a bad DSN parameter (RET, ENVID, NOTIFY, ORCPT; xtext), or one given twice: 501 5.5.4
- REQUIRETLS outside TLS: 530 5.7.10; a non-ASCII address without SMTPUTF8: 553 5.6.7;
  a UTF-8 domain that is no IDNA 2008 name: 553 5.1.3
- BDAT: bad syntax 501 5.5.4; RCPT/DATA between chunks 503 5.5.1; each chunk but the last
  250 2.0.0 (the last one's 250 only once the message is durable, as for DATA)
- command line longer than 512 octets: 500 5.5.2
- text line longer than 1000 octets: 500 5.5.2 ("500 Line too long", RFC 5321 §4.5.3.1)
- bare CR or LF, or NUL, in DATA: 550 5.5.2
- too many Received headers: 554 5.4.0
- unknown binding group / binding, or a binding outside the named group: 550 5.7.1
- AUTH before TLS: 538 5.7.11; bad credentials: 535 5.7.8
- idle or DATA deadline passed: 421 4.4.2; too many connections: 421 4.7.0;
  shutting down: 421 4.3.2
- spool full: 452 4.3.1; any other spool failure: 451 4.3.0

The command replies are aiosmtpd 1.4.6's stock texts (relay ran its command loop before
protocol.py), each with the enhanced status code `enhance` gives it, so that advertising
ENHANCEDSTATUSCODES is honest (RFC 2034: every reply but the greeting and the HELO/EHLO
replies); the tests check each against `enhance` of aiosmtpd's text.
"""

from __future__ import annotations

import re

GREETING = "220 {host} ESMTP relay"
OK = "250 2.0.0 OK"
BYE = "221 2.0.0 Bye"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
SEND_HELO = "503 5.5.1 Error: send HELO first"
SEND_EHLO = "503 5.5.1 Error: send EHLO first"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NESTED_MAIL = "503 5.5.1 Error: nested MAIL command"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
DATA_SYNTAX = "501 5.5.4 Syntax: DATA"
BAD_SYNTAX = "500 5.5.2 Error: bad syntax"
STRICT_ASCII = "500 5.5.2 Error: strict ASCII mode"
TOO_MANY_UNKNOWN = "502 5.5.1 Too many unrecognized commands, goodbye."
VRFY_UNVERIFIED = "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery"
EXPN_NOT_IMPLEMENTED = "502 5.5.1 EXPN not implemented"
MAIL_USAGE_ESMTP = "501 5.5.4 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"
BODY_INVALID = "501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME"
SMTPUTF8_ARGUMENT = "501 5.5.4 Error: SMTPUTF8 takes no arguments"
SMTPUTF8_DISABLED = "501 5.5.4 Error: SMTPUTF8 disabled"
RET_INVALID = "501 5.5.4 Error: RET can only be FULL or HDRS"
ENVID_INVALID = "501 5.5.4 Error: ENVID must be xtext of at most 100 characters"
NOTIFY_INVALID = "501 5.5.4 Error: NOTIFY can only be NEVER or a list of SUCCESS, FAILURE, DELAY"
ORCPT_INVALID = "501 5.5.4 Error: ORCPT must be addr-type;xtext of at most 500 characters"
REQUIRETLS_ARGUMENT = "501 5.5.4 Error: REQUIRETLS takes no arguments"
REQUIRETLS_NEEDS_TLS = "530 5.7.10 REQUIRETLS needs a TLS session: STARTTLS first"
UTF8_NEEDS_SMTPUTF8 = "553 5.6.7 Non-ASCII address needs SMTPUTF8 on MAIL FROM"
NON_ASCII_PARAMETER = "501 5.5.4 Error: ESMTP parameters must be ASCII"
BAD_IDN = "553 5.1.3 Domain is not a valid internationalized domain name (IDNA 2008)"
BDAT_SYNTAX = "501 5.5.4 Syntax: BDAT <size> [LAST]"
IN_BDAT = "503 5.5.1 Error: BDAT transaction in progress (only BDAT, RSET, NOOP, QUIT)"
TLS_READY = "220 2.0.0 Ready to start TLS"
TLS_NOT_AVAILABLE = "454 4.7.0 TLS not available"
TLS_ALREADY_ACTIVE = "554 5.5.1 Error: TLS already active"
AUTH_NOT_OFFERED = "500 5.5.1 Error: command 'AUTH' not recognized"
AUTH_NEEDS_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
AUTH_ALREADY = "503 5.5.1 Already authenticated"
AUTH_NO_MECHANISM = "501 5.5.4 Not enough value"
AUTH_TOO_MANY_VALUES = "501 5.5.4 Too many values"
AUTH_UNKNOWN_MECHANISM = "504 5.5.4 Unrecognized authentication type"
AUTH_ABORTED = "501 5.7.0 Auth aborted"
AUTH_BAD_BASE64 = "501 5.5.2 Can't decode base64"
AUTH_CANNOT_SPLIT = "501 5.5.2 Can't split auth value"

RELAY_DENIED = "550 5.7.1 Relaying denied: authenticate or connect from a relay host"
NULL_RECIPIENT = "553 5.1.3 The null path <> is not a recipient"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6: 1000 octets)"
COMMAND_TOO_LONG = "500 5.5.2 Command line too long"
BARE_LINE_ENDING = "550 5.5.2 Bare CR or LF in message data is not accepted"
NUL_IN_DATA = "550 5.5.2 NUL octet in message data is not accepted"
MAIL_LOOP = "554 5.4.0 Too many Received headers: mail loop?"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTH_OK = "235 2.7.0 Authentication successful"
TIMEOUT = "421 4.4.2 {host} Error: timeout exceeded"
TOO_MANY_CONNECTIONS = "421 4.7.0 {host} Too many connections, try again later"
TOO_MANY_FROM_IP = "421 4.7.0 {host} Too many connections from your address, try again later"
SHUTTING_DOWN = "421 4.3.2 {host} Service shutting down"
SPOOL_FULL = "452 4.3.1 Insufficient system storage"
SPOOL_FAILED = "451 4.3.0 Local error in processing, try again later"
QUEUED = "250 2.0.0 OK queued as {id}"
ALL_SUPPRESSED = "250 2.0.0 OK, but every recipient is on the suppression list: nothing queued"
QUEUED_PREFIX = QUEUED.partition("{")[0]


def parameter_twice(name: str) -> str:
    return f"501 5.5.4 Error: {name} given more than once"


def chunk_received(octets: int) -> str:
    return f"250 2.0.0 {octets} octets received"


def usage(syntax: str) -> str:
    return f"501 5.5.4 Syntax: {syntax}"


def help_usage(syntax: str) -> str:
    return f"250 2.0.0 Syntax: {syntax}"


def help_list(code: int, verbs: str) -> str:
    return f"{code} {'2.0.0' if code == 250 else '5.5.4'} Supported commands: {verbs}"


def unknown_command(verb: str) -> str:
    return f'500 5.5.1 Error: command "{_visible(verb)}" not recognized'


def unknown_parameters(verb: str) -> str:
    keyword = "FROM" if verb == "MAIL" else "TO"
    return f"555 5.5.4 {verb} {keyword} parameters not recognized or not implemented"


def cannot_vrfy(argument: str) -> str:
    return f"502 5.5.1 Could not VRFY {_visible(argument)}"


def unknown_group(name: str) -> str:
    return f'550 5.7.1 Unknown binding group "{_printable(name)}"'


def unknown_binding(name: str) -> str:
    return f'550 5.7.1 Unknown binding "{_printable(name)}"'


def binding_not_in_group(binding: str, group: str) -> str:
    return (
        f'550 5.7.1 Binding "{_printable(binding)}" is not in binding group "{_printable(group)}"'
    )


_SUPPRESSED = " is on the suppression list (an earlier hard bounce or complaint); not accepted"


def suppressed(address: str) -> str:
    return f"550 5.7.1 <{_printable(address)}>{_SUPPRESSED}"


def is_suppressed(reply: str) -> bool:
    return reply.endswith(_SUPPRESSED)


def bad_label(name: str) -> str:
    return f"550 5.6.0 {name}: give 1 to 128 printable characters"


def bad_priority(name: str) -> str:
    return f"550 5.6.0 {name}: give transactional or bulk"


def bad_address(reason: str) -> str:
    return f"553 5.1.3 {reason}"


def _visible(text: str) -> str:
    """The client's text echoed in a reply: each control octet (NUL, a bare CR, ...) and
    non-ASCII character becomes "?" (a reply line is printable ASCII)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def _printable(text: str) -> str:
    cleaned = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return cleaned[:100]


# aiosmtpd 1.4.6 stock replies (prefix match) and the enhanced code each gets.
_STOCK: tuple[tuple[str, str], ...] = (
    ("221 ", "2.0.0"),
    ("250 OK", "2.0.0"),
    ("250 Syntax:", "2.0.0"),
    ("250 Supported commands", "2.0.0"),
    ("252 ", "2.1.5"),
    ("454 ", "4.7.0"),
    ("500 Command line too long", "5.5.2"),
    ("500 Line too long", "5.5.2"),
    ("500 Error: command", "5.5.1"),
    ("500 ", "5.5.2"),
    ("501 Error: SMTPUTF8", "5.5.4"),
    ("501 Error: BODY", "5.5.4"),
    ("501 ", "5.5.4"),
    ("502 ", "5.5.1"),
    ("503 ", "5.5.1"),
    ("530 ", "5.7.0"),
    ("552 ", "5.3.4"),
    ("554 ", "5.7.0"),
    ("555 ", "5.5.4"),
)
_HAS_ENHANCED = re.compile(r"^[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}( |$)")


def enhance(reply: str) -> str:
    """Give an aiosmtpd stock reply an enhanced status code; leave others untouched."""
    if _HAS_ENHANCED.match(reply):
        return reply
    if reply.startswith("220 Ready to start TLS"):
        return "220 2.0.0 Ready to start TLS"
    if reply.startswith("500 Command line too long"):
        return COMMAND_TOO_LONG
    if reply.startswith("500 Line too long"):
        return LINE_TOO_LONG
    if reply.startswith("552 Error: message size exceeds"):
        return MESSAGE_TOO_BIG
    for prefix, code in _STOCK:
        if reply.startswith(prefix):
            return f"{reply[:3]} {code} {reply[4:]}".rstrip()
    return reply
