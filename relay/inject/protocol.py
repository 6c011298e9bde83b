"""The server side of one SMTP connection as a state machine, without I/O (h11's shape).

    session = Session(rules, hostname="relay.example", client=ip, tls_available=True,
                      mechanisms=("LOGIN", "PLAIN"))
    transport.write(session.take_output())          # the greeting
    event = session.receive(data)                   # every byte the client sends
    transport.write(session.take_output())          # the replies it gives rise to
    if event is not None: ...                        # the driver's turn (see below)

Bytes go in, replies (in `take_output`) and events come out. An event pauses the machine
(what arrives meanwhile is kept, not read) until the driver answers it:
- `MessageComplete` / `MessageRefused`: the content ended at <CRLF>.<CRLF> (or with the
  BDAT ... LAST chunk, or a BDAT chunk broke a rule); the driver spools it (or not) and
  calls `message_done(reply)`;
- `CheckCredentials`: an AUTH dialog gave a login and a password; the driver checks them
  and calls `credentials_checked(ok, user)`;
- `StartTLS`: 220 was said, input pipelined behind STARTTLS is dropped; the driver does the
  handshake and calls `tls_started()`, after which the client must EHLO again;
- `Close`: 221 (QUIT) or too many unknown commands; the driver closes.
Then `receive()` (no bytes) reads on through what was kept. Timers, sockets, the spool and
the password check are the driver's.

Where things are decided, each in one place:
- which command is legal in which phase: `COMMANDS`, one row per command;
- what EHLO offers, which MAIL/RCPT parameters exist and how each is checked, how long a
  command line may be: `EXTENSIONS`, one row per ESMTP extension;
- command lines (length, ASCII, unknown commands): `Session._command`;
- address syntax: `Session._path` (addresses.py); sender policy: `Session._check_sender`;
  recipient and relay policy: `Session._check_recipient` (checks.py; the suppression
  list through `Rules.suppressed`);
- message data (smuggling, line length, size): the `DataReader` made in `Session._data`;
  BDAT chunks (RFC 3030) go through the same reader (data.ChunkFeeder), so they meet the
  same rules; a BDAT's octets are read even when the command is refused (they are never
  taken for commands);
- the ESMTP parameters a message keeps (DSN, SMTPUTF8, REQUIRETLS): `Session._esmtp`;
- AUTH mechanisms: `MECHANISMS` (their challenges and how the answers give credentials).
Replies are aiosmtpd 1.4.6's where relay kept its behaviour, with enhanced status codes
(replies.py), byte for byte what relay sent when aiosmtpd's command loop ran it.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from relay.esmtp import (
    MAX_ENVID,
    Esmtp,
    XtextError,
    notify_value,
    orcpt_valid,
    xtext_decode,
)
from relay.inject import addresses, checks, replies
from relay.inject.data import ChunkFeeder, DataReader
from relay.inject.settings import InjectSettings, IPAddress, IPNetwork

log = logging.getLogger("relay.inject")

COMMAND_LINE_LIMIT = 510  # octets before CRLF: 512 with it (RFC 5321 §4.5.3.1.4)
SIZE_PARAMETER_EXTRA = 26  # RFC 1870 §3: MAIL may grow by " SIZE=" and 20 digits
DSN_MAIL_EXTRA = 115  # RFC 3461 §5: " RET=HDRS" and " ENVID=" with 100 characters
DSN_RCPT_EXTRA = 535  # RFC 3461 §5: " NOTIFY=SUCCESS,FAILURE,DELAY" and " ORCPT=" with 500
SMTPUTF8_EXTRA = 10  # RFC 6531 §3.4: " SMTPUTF8"
REQUIRETLS_EXTRA = 11  # " REQUIRETLS"
MAX_CHUNK_DIGITS = 18  # a BDAT size longer than this is not a size
AUTH_LINE_LIMIT = 1000  # RFC 4954 allows 12288; relay has always taken 1000
READ_LIMIT = 1101  # octets before LF past which a line is not even looked at (> every limit)
BOGUS_LIMIT = 5  # the 5th unknown command closes the connection


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the session had established when a message ended (its Received: field)."""

    helo: str | None
    esmtp: bool
    tls: bool
    authenticated: bool


@dataclass(frozen=True, slots=True, init=False)
class MessageComplete:
    """Acceptable content: the driver hands it over and answers with `message_done`."""

    sender: str  # "" for the null reverse-path
    recipients: tuple[str, ...]
    content: bytes  # dot-unstuffed, CRLF line ends
    session: SessionFacts
    esmtp: Esmtp | None  # DSN / SMTPUTF8 / REQUIRETLS parameters; None: none given

    def __init__(
        self,
        sender: str,
        recipients: tuple[str, ...],
        content: bytes,
        session: SessionFacts,
        esmtp: Esmtp | None = None,
    ) -> None:
        # One per message: the slots are set through their descriptors, a third cheaper
        # than the object.__setattr__ calls of the generated frozen __init__.
        _set_sender(self, sender)
        _set_recipients(self, recipients)
        _set_content(self, content)
        _set_session(self, session)
        _set_esmtp(self, esmtp)


_set_sender, _set_recipients, _set_content, _set_session, _set_esmtp = (
    MessageComplete.__dict__[name].__set__
    for name in ("sender", "recipients", "content", "session", "esmtp")
)


@dataclass(frozen=True, slots=True)
class MessageRefused:
    """The content broke a rule (smuggling, size, line length); `reply` says which. The
    driver answers with `message_done` (normally `reply` itself)."""

    reply: str


@dataclass(frozen=True, slots=True)
class CheckCredentials:
    """The driver checks these and answers with `credentials_checked`."""

    mechanism: str
    login: bytes
    password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class StartTLS:
    """220 was said: the driver upgrades the connection and calls `tls_started`."""


@dataclass(frozen=True, slots=True)
class Close:
    """The last reply was said: the driver closes the connection."""


Event = MessageComplete | MessageRefused | CheckCredentials | StartTLS | Close


class Rules(Protocol):
    """What the machine reads from the listener each time it decides (a reload swaps it)."""

    @property
    def settings(self) -> InjectSettings: ...

    @property
    def relay_hosts(self) -> tuple[IPNetwork, ...]: ...

    def suppressed(self, client: IPAddress | None, address: str) -> str | None:
        """The refusal of a recipient on the suppression list, or None."""
        ...


# --- the command table -----------------------------------------------------------------

# Phases of the conversation, the columns of the table.
BEFORE_HELO, READY, HAVE_SENDER, HAVE_RECIPIENTS, IN_CHUNKS = range(5)
PHASES = ("before HELO", "ready", "after MAIL", "after RCPT", "between BDAT chunks")
Refusals = tuple[str | None, str | None, str | None, str | None, str | None]

_OK = None  # legal in that phase


@dataclass(frozen=True, slots=True)
class Command:
    """One row of the command table; `Session._<verb>` runs the command where it is legal."""

    verb: str
    refusals: Refusals  # per phase: None = legal
    usage: str | None  # for HELP and the 501 syntax reply; None: HELP does not list it
    esmtp_usage: str = ""  # added to `usage` in an EHLO session
    line_limit: int = COMMAND_LINE_LIMIT  # octets before CRLF after EHLO (510 after HELO)
    needs_tls_context: bool = False  # HELP lists it only where TLS can be had
    payload: bool = False  # octets follow the line (BDAT): read even when it is refused


_HELO, _EHLO = replies.SEND_HELO, replies.SEND_EHLO
_MAIL, _RCPT, _NESTED = replies.NEED_MAIL, replies.NEED_RCPT, replies.NESTED_MAIL
_BDAT = replies.IN_BDAT
_PARAMS = " [SP <mail-parameters>]"

# fmt: off
COMMANDS: tuple[Command, ...] = (
    #                   before HELO  ready  after MAIL  after RCPT  between BDAT chunks
    Command("HELO",     (_OK,        _OK,   _OK,        _OK,        _OK),      "HELO hostname"),
    Command("EHLO",     (_OK,        _OK,   _OK,        _OK,        _OK),      "EHLO hostname"),
    Command("MAIL",     (_HELO,      _OK,   _NESTED,    _NESTED,    _NESTED),
            "MAIL FROM: <address>", _PARAMS),
    Command("RCPT",     (_HELO,      _MAIL, _OK,        _OK,        _BDAT),
            "RCPT TO: <address>", _PARAMS),
    Command("DATA",     (_HELO,      _RCPT, _RCPT,      _OK,        _BDAT),    "DATA"),
    Command("BDAT",     (_HELO,      _MAIL, _RCPT,      _OK,        _OK),
            "BDAT <size> [LAST]", payload=True),
    Command("AUTH",     (_EHLO,      _OK,   _OK,        _OK,        _BDAT),    "AUTH <mechanism>",
            line_limit=AUTH_LINE_LIMIT),
    Command("STARTTLS", (_OK,        _OK,   _OK,        _OK,        _BDAT),    "STARTTLS",
            needs_tls_context=True),
    Command("RSET",     (_OK,        _OK,   _OK,        _OK,        _OK),      "RSET"),
    Command("NOOP",     (_OK,        _OK,   _OK,        _OK,        _OK),      "NOOP [ignored]"),
    Command("QUIT",     (_OK,        _OK,   _OK,        _OK,        _OK),      "QUIT"),
    Command("HELP",     (_OK,        _OK,   _OK,        _OK,        _OK),      "HELP [command]"),
    Command("VRFY",     (_OK,        _OK,   _OK,        _OK,        _OK),      "VRFY <address>"),
    Command("EXPN",     (_OK,        _OK,   _OK,        _OK,        _OK),      None),
)
# fmt: on


# --- the ESMTP extension table ---------------------------------------------------------

# (session, value; None: no "=") -> the reply refusing it, or None
ParameterCheck = Callable[["Session", str | None], str | None]


@dataclass(frozen=True, slots=True)
class Extension:
    """One EHLO keyword: when it is offered, the MAIL/RCPT parameters it brings (each with
    its check) and how much longer it lets a command line be."""

    keyword: str
    offered: Callable[[Session], str | None] = lambda session: ""  # EHLO text ("": keyword)
    mail_parameters: Mapping[str, ParameterCheck] = field(default_factory=dict)
    rcpt_parameters: Mapping[str, ParameterCheck] = field(default_factory=dict)
    line_extra: Mapping[str, int] = field(default_factory=dict)  # verb -> octets


def _size_offered(session: Session) -> str | None:
    size = session.rules.settings.max_message_size
    return f"SIZE {size}" if size else ""  # RFC 1870 4: no number, no announced limit


def _size_value(session: Session, value: str | None) -> str | None:
    # The limit itself is sender policy (Session._check_sender), checked once all is parsed.
    return None if value is not None and value.isdigit() else replies.MAIL_USAGE_ESMTP


def _body_value(session: Session, value: str | None) -> str | None:
    if value is not None and value.upper() in ("7BIT", "8BITMIME"):
        return None
    return replies.BODY_INVALID


def _smtputf8_value(session: Session, value: str | None) -> str | None:
    return replies.SMTPUTF8_ARGUMENT if value is not None else None


def _ret_value(session: Session, value: str | None) -> str | None:
    return None if value is not None and value.upper() in ("FULL", "HDRS") else replies.RET_INVALID


def _envid_value(session: Session, value: str | None) -> str | None:
    if value is None or len(value) > MAX_ENVID:
        return replies.ENVID_INVALID
    try:
        xtext_decode(value)
    except XtextError:
        return replies.ENVID_INVALID
    return None


def _notify_value(session: Session, value: str | None) -> str | None:
    return None if value is not None and notify_value(value) else replies.NOTIFY_INVALID


def _orcpt_value(session: Session, value: str | None) -> str | None:
    return None if value is not None and orcpt_valid(value) else replies.ORCPT_INVALID


def _requiretls_value(session: Session, value: str | None) -> str | None:
    if value is not None:
        return replies.REQUIRETLS_ARGUMENT
    return None if session.tls else replies.REQUIRETLS_NEEDS_TLS


def _requiretls_offered(session: Session) -> str | None:
    return "" if session.tls else None  # RFC 8689 §4.1: only once TLS is in place


def _starttls_offered(session: Session) -> str | None:
    return "" if session.tls_available and not session.tls else None


def _auth_offered(session: Session) -> str | None:
    if not session.tls or not session.mechanisms:
        return None  # AUTH only over TLS (538 before), and only with a credentials file
    return "AUTH " + " ".join(session.mechanisms)


# In EHLO order ("250 HELP" last, as aiosmtpd always ended it).
EXTENSIONS: tuple[Extension, ...] = (
    Extension(
        "SIZE",
        _size_offered,
        mail_parameters={"SIZE": _size_value},
        line_extra={"MAIL": SIZE_PARAMETER_EXTRA},
    ),
    Extension("PIPELINING"),
    Extension("ENHANCEDSTATUSCODES"),
    Extension("8BITMIME", mail_parameters={"BODY": _body_value}),
    Extension(
        "DSN",
        mail_parameters={"RET": _ret_value, "ENVID": _envid_value},
        rcpt_parameters={"NOTIFY": _notify_value, "ORCPT": _orcpt_value},
        line_extra={"MAIL": DSN_MAIL_EXTRA, "RCPT": DSN_RCPT_EXTRA},
    ),
    Extension("CHUNKING"),
    Extension("STARTTLS", _starttls_offered),
    Extension("AUTH", _auth_offered),
    Extension(
        "SMTPUTF8",
        mail_parameters={"SMTPUTF8": _smtputf8_value},
        line_extra={"MAIL": SMTPUTF8_EXTRA},
    ),
    Extension(
        "REQUIRETLS",
        _requiretls_offered,
        mail_parameters={"REQUIRETLS": _requiretls_value},
        line_extra={"MAIL": REQUIRETLS_EXTRA},
    ),
    Extension("HELP"),
)

# Parameters are known whether or not their extension was offered (as with aiosmtpd).
MAIL_PARAMETERS: dict[str, ParameterCheck] = {
    name: check for ext in EXTENSIONS for name, check in ext.mail_parameters.items()
}
RCPT_PARAMETERS: dict[str, ParameterCheck] = {
    name: check for ext in EXTENSIONS for name, check in ext.rcpt_parameters.items()
}


# --- AUTH mechanisms --------------------------------------------------------------------


def _plain_credentials(answers: list[bytes]) -> tuple[bytes, bytes] | str:
    parts = answers[0].split(b"\x00")  # authzid NUL authcid NUL passwd (RFC 4616)
    if len(parts) != 3:
        return replies.AUTH_CANNOT_SPLIT
    return parts[1], parts[2]


def _login_credentials(answers: list[bytes]) -> tuple[bytes, bytes] | str:
    return answers[0], answers[1]


@dataclass(frozen=True, slots=True)
class Mechanism:
    """A SASL mechanism: the challenges (an initial response answers the first one) and
    how the answers give (login, password), or the reply refusing them."""

    challenges: tuple[bytes, ...]
    credentials: Callable[[list[bytes]], tuple[bytes, bytes] | str]


MECHANISMS: dict[str, Mechanism] = {
    "LOGIN": Mechanism((b"Username:", b"Password:"), _login_credentials),
    "PLAIN": Mechanism((b"",), _plain_credentials),
}


def _decode(text: bytes) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


# --- encoded replies ---------------------------------------------------------------------

_wire_cache: dict[str, bytes] = {}
_WIRE_MAX = 256


def wire(reply: str) -> bytes:
    """A reply's bytes (multi-line replies are given with CRLF between lines), cached."""
    data = _wire_cache.get(reply)
    if data is None:
        data = reply.encode("ascii") + b"\r\n"
        if reply.startswith(replies.QUEUED_PREFIX):
            return data  # one per message: not worth keeping
        if len(_wire_cache) >= _WIRE_MAX:
            _wire_cache.clear()
        _wire_cache[reply] = data
    return data


_greetings: dict[str, bytes] = {}


def _greeting(hostname: str) -> bytes:
    """The 220 a connection starts with, built once per hostname."""
    data = _greetings.get(hostname)
    if data is None:
        if len(_greetings) >= _WIRE_MAX:
            _greetings.clear()
        data = _greetings[hostname] = wire(replies.GREETING.format(host=hostname))
    return data


_NO_LIMITS: dict[bytes, int] = {}  # after HELO: 510 for every command (never changed)
_SENDER_OK = wire(replies.SENDER_OK)
_RECIPIENT_OK = wire(replies.RECIPIENT_OK)
_START_DATA = wire(replies.START_DATA)
_OK_WIRE = wire(replies.OK)

# Input modes: what the next bytes are (from _PAUSED on, none is read).
_COMMAND, _CONTENT, _AUTH_ANSWER, _DISCARD, _CHUNK, _PAUSED, _CLOSED = range(7)


class Session:
    """One SMTP connection's conversation. Not thread-safe; no I/O (it only logs refused
    recipients); never raises on input."""

    def __init__(
        self,
        rules: Rules,
        *,
        hostname: str,
        client: IPAddress | None,
        tls_available: bool,
        mechanisms: tuple[str, ...],
    ) -> None:
        self.rules = rules
        self.hostname = hostname
        self.client = client  # for the relay check (None: unknown, never a relay host)
        self.tls_available = tls_available
        self.mechanisms = (
            tuple(sorted(m for m in mechanisms if m in MECHANISMS)) if mechanisms else ()
        )
        self.commands = 0  # commands taken so far (the driver's idle deadline restarts at each)
        self.reading_content = False  # from the 354 to the end of the data (whole-DATA deadline)
        self.tls = False
        self._out: list[bytes] = [_greeting(hostname)]
        self._input = b""  # received, not yet read (from `_pos` on); b"" when none
        self._pos = 0
        self._mode = _COMMAND
        self._awaiting: type[Event] | None = None  # the event the driver has yet to answer
        self._discarding_answer = False
        self._bogus = BOGUS_LIMIT
        self._relay_verdict: tuple[tuple[IPNetwork, ...], bool, bool] | None = None
        self._reader: DataReader | None = None
        self._chunk_left = 0  # octets of the BDAT chunk being read, still to come
        self._chunk_octets = 0  # its size
        self._chunk_last = False  # it is the LAST one
        self._chunk_refusal: str | None = None  # the BDAT was refused: its octets are dropped
        self._mechanism: str | None = None  # in an AUTH dialog
        self._answers: list[bytes] = []
        self._new_session()

    def _new_session(self) -> None:
        """What HELO/EHLO must set up again (at the start and after STARTTLS)."""
        self._facts: SessionFacts | None = None
        self.helo: str | None = None
        self.esmtp = False
        self.authenticated = False
        self.user: str | None = None
        self._line_limits: dict[bytes, int] = _NO_LIMITS  # in an EHLO session; else 510
        self._phase = BEFORE_HELO
        self._new_transaction()

    def _new_transaction(self) -> None:
        self.sender: str | None = None  # "<>" for the null reverse-path
        self.mail_options: tuple[str, ...] = ()
        self.recipients: list[str] = []
        # RCPT parameters by recipient; None until a recipient has some (the common case)
        self.rcpt_options: list[tuple[str, ...]] | None = None
        self._feeder: ChunkFeeder | None = None  # the BDAT chunks so far
        if self._phase > READY:
            self._phase = READY

    # --- what the driver sees -----------------------------------------------------------

    @property
    def phase(self) -> int:
        return self._phase

    @property
    def in_transaction(self) -> bool:
        """MAIL given and the message not yet answered (a draining server lets it finish)."""
        return (
            self._phase >= HAVE_SENDER
            or self._mode == _CONTENT
            or self._mode == _CHUNK
            or (self._awaiting is MessageComplete or self._awaiting is MessageRefused)
        )

    @property
    def buffered(self) -> int:
        """Octets received and not yet read."""
        return len(self._input) - self._pos if self._input else 0

    @property
    def closed(self) -> bool:
        return self._mode == _CLOSED

    def take_output(self) -> bytes:
        """The replies said since the last call, to be written in this order."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    # --- input ----------------------------------------------------------------------------

    def receive(self, data: bytes = b"") -> Event | None:
        """Take the client's bytes (any split) and read as far as they go: None when more
        are needed, or the event the driver must answer before the machine reads on.
        `receive()` without bytes reads on through what was kept."""
        if self._mode >= _PAUSED:
            if data and self._mode == _PAUSED:  # kept for later (the driver pauses the socket)
                self._input = self._input[self._pos :] + data if self._input else data
                self._pos = 0
            return None
        pos = 0
        if self._input:  # kept from before: a partial line, or what came while paused
            if data:
                data = self._input[self._pos :] + data
            else:
                data, pos = self._input, self._pos
            self._input = b""
        elif not data:
            return None
        end = len(data)
        while pos < end:
            mode = self._mode
            if mode == _CHUNK:
                take = min(self._chunk_left, end - pos)
                if self._chunk_refusal is None:
                    feeder = self._feeder
                    assert feeder is not None
                    feeder.feed(data[pos : pos + take])
                pos += take
                self._chunk_left -= take
                if self._chunk_left:
                    return None
                event = self._chunk_done()
                if event is not None:
                    if pos < end:
                        self._input, self._pos = data, pos
                    return event
                continue
            if mode == _CONTENT:
                reader = self._reader
                assert reader is not None
                rest = reader.feed(data[pos:] if pos else data)
                if not reader.done:
                    return None
                self._input, self._pos = rest, 0
                return self._content_done(reader)
            newline = data.find(b"\n", pos)
            if mode == _DISCARD:
                if newline < 0:
                    return None
                pos = newline + 1
                self._mode = _COMMAND
                self._say(replies.COMMAND_TOO_LONG)
                continue
            if newline < 0:
                if end - pos > READ_LIMIT:
                    self._too_long()
                    self._mode = _DISCARD
                else:
                    self._input, self._pos = data, pos
                return None
            if newline - pos > READ_LIMIT:
                self._too_long()
                self._say(replies.COMMAND_TOO_LONG)
                pos = newline + 1
                continue
            line = data[pos:newline]
            pos = newline + 1
            event = self._command(line) if mode == _COMMAND else self._auth_answer(line)
            if self._mode >= _PAUSED:
                if self._mode == _PAUSED and self._awaiting is not StartTLS and pos < end:
                    self._input, self._pos = data, pos  # kept for `receive()` after the answer
                return event
        return None

    def _too_long(self) -> None:
        if self._mode == _AUTH_ANSWER:
            self._mechanism, self._answers = None, []  # an overlong answer ends the dialog
            self._mode = _COMMAND

    # --- command lines ----------------------------------------------------------------------

    def _command(self, line: bytes) -> Event | None:
        line = line.rstrip(b"\r\n")
        if not line:
            return self._say(replies.BAD_SYNTAX)
        verb, _, arg_bytes = line.partition(b" ")
        command = _DISPATCH.get(verb)
        if command is None:
            verb = verb.upper()
            command = _DISPATCH.get(verb)
            if command is None and not verb.isascii():
                return self._say(replies.BAD_SYNTAX)
        try:
            arg = arg_bytes.strip().decode("ascii")
        except UnicodeDecodeError:
            # UTF-8 addresses (RFC 6531), in MAIL and RCPT of an EHLO session only
            if not self.esmtp or (verb != b"MAIL" and verb != b"RCPT"):
                return self._say(replies.STRICT_ASCII)
            try:
                arg = arg_bytes.strip().decode("utf-8")
            except UnicodeDecodeError:
                return self._say(replies.STRICT_ASCII)
        if len(line) > COMMAND_LINE_LIMIT and len(line) > self._line_limits.get(
            verb, COMMAND_LINE_LIMIT
        ):
            return self._say(replies.COMMAND_TOO_LONG)
        if command is None:
            self._bogus -= 1
            if self._bogus < 1:
                self._say(replies.TOO_MANY_UNKNOWN)
                self._mode = _CLOSED
                return Close()
            return self._say(replies.unknown_command(verb.decode("ascii")))
        self.commands += 1
        refusals, run, payload = command
        refusal = refusals[self._phase]
        if refusal is not None:
            if payload:
                return self._refuse_chunk(arg, refusal)
            return self._say(refusal)
        return run(self, arg)

    def _say(self, reply: str) -> Event | None:
        """Queue a reply; no event (so that a handler can `return self._say(...)`)."""
        self._out.append(wire(reply))
        return None

    def _say_wire(self, data: bytes) -> Event | None:
        self._out.append(data)
        return None

    def _usage(self, verb: str) -> str:
        row = _ROWS[verb]
        assert row.usage is not None
        return replies.usage(row.usage + (row.esmtp_usage if self.esmtp else ""))

    # --- HELO, EHLO, RSET, NOOP, QUIT, HELP, VRFY, EXPN ------------------------------------

    def _greeted(self, helo: str, *, esmtp: bool) -> None:
        self._new_transaction()
        self.helo = helo
        self.esmtp = esmtp
        self._facts = None
        self._phase = READY

    def _helo(self, arg: str) -> Event | None:
        if not arg:
            return self._say(self._usage("HELO"))
        self._greeted(arg, esmtp=False)
        self._line_limits = _NO_LIMITS
        return self._say(f"250 {self.hostname}")

    def _ehlo(self, arg: str) -> Event | None:
        if not arg:
            return self._say(self._usage("EHLO"))
        self._greeted(arg, esmtp=True)
        offered = tuple([extension.offered(self) for extension in EXTENSIONS])
        key = (self.hostname, offered)
        answer = _ehlo_cache.get(key)
        if answer is None:
            if len(_ehlo_cache) >= _WIRE_MAX:
                _ehlo_cache.clear()
            answer = _ehlo_cache[key] = _ehlo_answer(self.hostname, offered)
        self._line_limits = answer[1]
        return self._say_wire(answer[0])

    def _rset(self, arg: str) -> Event | None:
        if arg:
            return self._say(self._usage("RSET"))
        self._new_transaction()
        return self._say_wire(_OK_WIRE)

    def _noop(self, arg: str) -> Event | None:
        return self._say_wire(_OK_WIRE)

    def _quit(self, arg: str) -> Event | None:
        if arg:
            return self._say(self._usage("QUIT"))
        self._say(replies.BYE)
        self._mode = _CLOSED
        return Close()

    def _help(self, arg: str) -> Event | None:
        code = 250
        if arg:
            row = _ROWS.get(arg.upper())
            if row is not None and self._listed(row):
                assert row.usage is not None
                text = row.usage + (row.esmtp_usage if self.esmtp else "")
                return self._say(replies.help_usage(text))
            code = 501
        verbs = sorted(row.verb for row in COMMANDS if self._listed(row))
        return self._say(replies.help_list(code, " ".join(verbs)))

    def _listed(self, row: Command) -> bool:
        return row.usage is not None and (self.tls_available or not row.needs_tls_context)

    def _vrfy(self, arg: str) -> Event | None:
        if not arg:
            return self._say(self._usage("VRFY"))
        if isinstance(self._path(arg), str):
            return self._say(replies.cannot_vrfy(arg))
        return self._say(replies.VRFY_UNVERIFIED)

    def _expn(self, arg: str) -> Event | None:
        return self._say(replies.EXPN_NOT_IMPLEMENTED)

    # --- the transaction --------------------------------------------------------------------

    def _path(self, text: str, utf8: bool = False) -> tuple[str, str] | str:
        """(address, parameters) of a MAIL/RCPT/VRFY path (`<>` for the null path), or the
        reply refusing its syntax. The only place addresses are parsed. `utf8`: the
        address may hold UTF-8 (SMTPUTF8); its domain comes back as A-labels."""
        address = addresses.plain_address(text)  # the bulk shape, in one regex match
        if address is not None:
            return address, ""
        try:
            path = addresses.parse_path(text, utf8)
        except addresses.AddressError as error:
            return error.reply
        if not path.params.isascii():
            return replies.NON_ASCII_PARAMETER
        return path.address, path.params

    def _parameters(
        self, options: tuple[str, ...], known: Mapping[str, ParameterCheck], verb: str
    ) -> str | None:
        """Check ESMTP parameters (RFC 5321 §4.1.2 esmtp-param) against the extension
        table: None, or the reply refusing the first bad one."""
        seen: set[str] = set()
        for option in options:
            name, equals, value = option.partition("=")
            if not name.isalnum() or (equals and not value):
                return self._usage(verb)
            upper = name.upper()
            check = known.get(upper)
            if check is None:
                return replies.unknown_parameters(verb)
            if upper in seen:
                return replies.parameter_twice(upper)
            seen.add(upper)
            refusal = check(self, value if equals else None)
            if refusal is not None:
                return refusal
        return None

    def _options(
        self, params: str, table: Mapping[str, ParameterCheck], verb: str
    ) -> tuple[str, ...] | str:
        """MAIL/RCPT parameters after the path, checked against `table`: the options, or
        the reply refusing them (none are allowed after HELO)."""
        if not params:
            return ()
        if not self.esmtp:
            return self._usage(verb)
        options = tuple(params.split())
        refusal = self._parameters(options, table, verb)
        return options if refusal is None else refusal

    def _mail(self, arg: str) -> Event | None:
        if arg[:5].upper() != "FROM:":
            return self._say(self._usage("MAIL"))
        utf8 = not arg.isascii()
        path = self._path(arg[5:], utf8)
        if isinstance(path, str):
            return self._say(path)
        address, params = path
        options = self._options(params, MAIL_PARAMETERS, "MAIL")
        if isinstance(options, str):
            return self._say(options)
        if utf8 and not _has_option(options, "SMTPUTF8"):
            return self._say(replies.UTF8_NEEDS_SMTPUTF8)
        refusal = self._check_sender(address, options)
        if refusal is not None:
            return self._say(refusal)
        self.sender = address
        self.mail_options = options
        self._phase = HAVE_SENDER
        self._out.append(_SENDER_OK)
        return None

    def _check_sender(self, address: str, options: tuple[str, ...]) -> str | None:
        """Sender policy, for every MAIL: None to accept, or the reply refusing."""
        if options:  # SIZE= (RFC 1870): refused at once if over the limit
            refusal = checks.check_declared_size(
                checks.declared_size(options), self.rules.settings.max_message_size
            )
            if refusal is not None:
                return refusal
        return None

    def _rcpt(self, arg: str) -> Event | None:
        if arg[:3].upper() != "TO:":
            return self._say(self._usage("RCPT"))
        utf8 = not arg.isascii()
        path = self._path(arg[3:], utf8)
        if isinstance(path, str):
            return self._say(path)  # also non-ASCII parameters (an ASCII address)
        if utf8 and not _has_option(self.mail_options, "SMTPUTF8"):
            return self._say(replies.UTF8_NEEDS_SMTPUTF8)
        address, params = path
        options = self._options(params, RCPT_PARAMETERS, "RCPT")
        if isinstance(options, str):
            return self._say(options)
        refusal = self._check_recipient(address)
        if refusal is not None:
            log.info("%s: RCPT %s refused: %s", self.client, address, refusal)
            return self._say(refusal)
        if options or self.rcpt_options is not None:
            if self.rcpt_options is None:
                self.rcpt_options = [()] * len(self.recipients)
            self.rcpt_options.append(options)
        self.recipients.append(address)
        self._phase = HAVE_RECIPIENTS
        self._out.append(_RECIPIENT_OK)
        return None

    def _check_recipient(self, address: str) -> str | None:
        """Recipient and relay policy, for every RCPT: None to accept, or the reply."""
        refusal = checks.check_recipient(
            address == "<>",
            may_relay=self._may_relay(),
            accepted=len(self.recipients),
            max_recipients=self.rules.settings.max_recipients,
        )
        return refusal if refusal is not None else self.rules.suppressed(self.client, address)

    def _may_relay(self) -> bool:
        """checks.may_relay for this client, kept until AUTH or a reload changes its inputs
        (it is asked at every RCPT)."""
        hosts = self.rules.relay_hosts
        cached = self._relay_verdict
        if cached is not None and cached[0] is hosts and cached[1] == self.authenticated:
            return cached[2]
        allowed = checks.may_relay(self.client, hosts, self.authenticated)
        self._relay_verdict = (hosts, self.authenticated, allowed)
        return allowed

    def _data(self, arg: str) -> Event | None:
        if arg:
            return self._say(replies.DATA_SYNTAX)
        settings = self.rules.settings
        self._reader = DataReader(
            max_size=settings.max_message_size, normalize=settings.normalize_bare_line_endings
        )
        self._mode = _CONTENT
        self.reading_content = True
        self._out.append(_START_DATA)
        return None

    # --- BDAT (RFC 3030) ------------------------------------------------------------------

    def _bdat(self, arg: str) -> Event | None:
        size = _chunk_size(arg)
        if size is None:
            return self._say(replies.BDAT_SYNTAX)
        if self._feeder is None:
            settings = self.rules.settings
            self._feeder = ChunkFeeder(
                DataReader(
                    max_size=settings.max_message_size,
                    normalize=settings.normalize_bare_line_endings,
                )
            )
        self._chunk_left, self._chunk_last = size
        self._chunk_octets = size[0]
        self._chunk_refusal = None
        self._mode = _CHUNK
        self.reading_content = True
        return self._chunk_done() if not self._chunk_left else None

    def _refuse_chunk(self, arg: str, refusal: str) -> Event | None:
        """A refused BDAT: its octets are read and dropped, then the refusal said."""
        size = _chunk_size(arg)
        if size is None:  # no size: nothing to read, only the refusal to say
            return self._say(refusal)
        self._chunk_left = size[0]
        self._chunk_last = False
        self._chunk_refusal = refusal
        self._mode = _CHUNK
        return self._chunk_done() if not self._chunk_left else None

    def _chunk_done(self) -> Event | None:
        """A chunk's octets are all read: its reply, or the message's event."""
        self._mode = _COMMAND
        self.reading_content = False
        if self._chunk_refusal is not None:
            refusal, self._chunk_refusal = self._chunk_refusal, None
            return self._say(refusal)
        feeder = self._feeder
        assert feeder is not None
        reader = feeder.reader
        if reader.refusal is None and not self._chunk_last:
            self._phase = IN_CHUNKS
            return self._say(replies.chunk_received(self._chunk_octets))
        if reader.refusal is None:
            feeder.finish()
        self._feeder = None
        return self._content_done(reader)

    def _content_done(self, reader: DataReader) -> Event:
        self._reader = None
        self._mode = _PAUSED
        self.reading_content = False
        if reader.refusal is not None:
            self._awaiting = MessageRefused
            return MessageRefused(reader.refusal)
        self._awaiting = MessageComplete
        sender = self.sender
        facts = self._facts
        if facts is None:  # made again only when HELO, EHLO, AUTH or STARTTLS changed it
            facts = self._facts = SessionFacts(self.helo, self.esmtp, self.tls, self.authenticated)
        return MessageComplete(
            "" if sender is None or sender == "<>" else sender,
            tuple(self.recipients),
            reader.content(),
            facts,
            self._esmtp() if self.mail_options or self.rcpt_options is not None else None,
        )

    def _esmtp(self) -> Esmtp | None:
        """The parameters the message keeps (DSN, SMTPUTF8, REQUIRETLS), or None."""
        ret = envid = None
        smtputf8 = requiretls = False
        for option in self.mail_options:
            name, _, value = option.partition("=")
            name = name.upper()
            if name == "RET":
                ret = value.upper()
            elif name == "ENVID":
                envid = value
            elif name == "SMTPUTF8":
                smtputf8 = True
            elif name == "REQUIRETLS":
                requiretls = True
        notify: tuple[str | None, ...] = ()
        orcpt: tuple[str | None, ...] = ()
        if self.rcpt_options is not None:
            notify = tuple(_rcpt_value(o, "NOTIFY") for o in self.rcpt_options)
            orcpt = tuple(_rcpt_value(o, "ORCPT") for o in self.rcpt_options)
            notify = notify if any(n is not None for n in notify) else ()
            orcpt = orcpt if any(o is not None for o in orcpt) else ()
        if not (ret or envid or smtputf8 or requiretls or notify or orcpt):
            return None
        return Esmtp(ret, envid, smtputf8, requiretls, notify, orcpt)

    def message_done(self, reply: str) -> None:
        """The driver's answer to MessageComplete/MessageRefused: the reply to the data.
        The transaction is over; `receive()` reads on."""
        if self._awaiting is not MessageComplete and self._awaiting is not MessageRefused:
            raise RuntimeError("no message is waiting for its reply")
        self._awaiting = None
        self._out.append(reply.encode("ascii") + b"\r\n")  # mostly "queued as <id>": no cache
        self._new_transaction()
        self._mode = _COMMAND

    # --- AUTH ---------------------------------------------------------------------------------

    def _auth(self, arg: str) -> Event | None:
        if not self.esmtp:
            return self._say(replies.AUTH_NOT_OFFERED)
        if not self.tls:
            return self._say(replies.AUTH_NEEDS_TLS)
        if self.authenticated:
            return self._say(replies.AUTH_ALREADY)
        if not arg:
            return self._say(replies.AUTH_NO_MECHANISM)
        args = arg.split()
        if len(args) > 2:
            return self._say(replies.AUTH_TOO_MANY_VALUES)
        name = args[0]
        if name not in self.mechanisms:
            return self._say(replies.AUTH_UNKNOWN_MECHANISM)
        self._mechanism, self._answers = name, []
        if len(args) == 2:  # an initial response (RFC 4954 §4)
            answer = _decode(args[1].encode())
            if answer is None:
                self._mechanism = None
                return self._say(replies.AUTH_BAD_BASE64)
            self._answers.append(answer)
        return self._auth_next()

    def _auth_answer(self, line: bytes) -> Event | None:
        blob = line.strip()
        if blob == b"*":
            self._end_auth()
            return self._say(replies.AUTH_ABORTED)
        answer = _decode(blob)
        if answer is None:
            self._end_auth()
            return self._say(replies.AUTH_BAD_BASE64)
        self._answers.append(answer)
        return self._auth_next()

    def _auth_next(self) -> Event | None:
        assert self._mechanism is not None
        mechanism = MECHANISMS[self._mechanism]
        if len(self._answers) < len(mechanism.challenges):
            challenge = mechanism.challenges[len(self._answers)]
            self._mode = _AUTH_ANSWER
            self._say_wire(b"334 " + base64.b64encode(challenge) + b"\r\n")
            return None
        name = self._mechanism
        credentials = mechanism.credentials(self._answers)
        self._end_auth()
        if isinstance(credentials, str):
            return self._say(credentials)
        self._mode = _PAUSED
        self._awaiting = CheckCredentials
        return CheckCredentials(name, credentials[0], credentials[1])

    def _end_auth(self) -> None:
        self._mechanism, self._answers = None, []
        self._mode = _COMMAND

    def credentials_checked(self, ok: bool, user: str | None = None) -> None:
        """The driver's answer to CheckCredentials; `receive()` reads on."""
        if self._awaiting is not CheckCredentials:
            raise RuntimeError("no credentials are waiting to be checked")
        self._awaiting = None
        self._mode = _COMMAND
        if ok:
            self.authenticated = True
            self.user = user
            self._facts = None
            self._say(replies.AUTH_OK)
        else:
            self._say(replies.AUTH_FAILED)

    # --- STARTTLS -----------------------------------------------------------------------------

    def _starttls(self, arg: str) -> Event | None:
        if arg:
            return self._say(self._usage("STARTTLS"))
        if not self.tls_available:
            return self._say(replies.TLS_NOT_AVAILABLE)
        if self.tls:
            return self._say(replies.TLS_ALREADY_ACTIVE)
        self._say(replies.TLS_READY)
        self._mode = _PAUSED
        self._awaiting = StartTLS
        self._input, self._pos = b"", 0  # pipelined plaintext is never read (RFC 3207 §4.2)
        return StartTLS()

    def tls_started(self) -> None:
        """The handshake is done: a new session over TLS (the client must EHLO again).
        What came over TLS meanwhile is kept for `receive()`."""
        if self._awaiting is not StartTLS:
            raise RuntimeError("STARTTLS was not asked for")
        self._awaiting = None
        self.tls = True
        self._new_session()
        self._mode = _COMMAND


# (hostname, what each extension offered) -> the EHLO reply's bytes and the line limits
# it sets: one reply per listener and TLS state, built once, not at every EHLO.
_ehlo_cache: dict[tuple[str, tuple[str | None, ...]], tuple[bytes, dict[bytes, int]]] = {}


def _ehlo_answer(hostname: str, offered: tuple[str | None, ...]) -> tuple[bytes, dict[bytes, int]]:
    """The EHLO reply (one line per extension offered, in table order) and the command
    line limits it brings; `offered[i]` is `EXTENSIONS[i].offered(session)`. The limits
    are shared by the sessions given this reply: read, never changed."""
    lines = [hostname]
    limits = {row.verb.encode(): row.line_limit for row in COMMANDS}
    for extension, text in zip(EXTENSIONS, offered, strict=True):
        if text is None:
            continue
        lines.append(text or extension.keyword)
        for verb, extra in extension.line_extra.items():
            limits[verb.encode()] += extra
    last = len(lines) - 1
    reply = "\r\n".join(f"250{'-' if n < last else ' '}{text}" for n, text in enumerate(lines))
    return reply.encode("ascii") + b"\r\n", limits


def _has_option(options: tuple[str, ...], name: str) -> bool:
    return any(option.partition("=")[0].upper() == name for option in options)


def _rcpt_value(options: tuple[str, ...], name: str) -> str | None:
    """A RCPT parameter's value as kept (NOTIFY made canonical), or None."""
    for option in options:
        key, _, value = option.partition("=")
        if key.upper() == name:
            return notify_value(value) if name == "NOTIFY" else value
    return None


def _chunk_size(arg: str) -> tuple[int, bool] | None:
    """BDAT's (size, LAST), or None when the argument is not `<size> [LAST]`."""
    words = arg.split()
    if not 1 <= len(words) <= 2 or not words[0].isdigit() or len(words[0]) > MAX_CHUNK_DIGITS:
        return None
    if len(words) == 2 and words[1].upper() != "LAST":
        return None
    return int(words[0]), len(words) == 2


_ROWS: dict[str, Command] = {row.verb: row for row in COMMANDS}
# What `_command` needs of each row: the refusals by phase, the handler, and whether a
# payload follows the line.
_DISPATCH: dict[bytes, tuple[Refusals, Callable[..., Event | None], bool]] = {
    row.verb.encode(): (row.refusals, getattr(Session, f"_{row.verb.lower()}"), row.payload)
    for row in COMMANDS
}
