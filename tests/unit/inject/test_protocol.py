"""The SMTP state machine on its own: no sockets, no loop; bytes in, replies and events out.

`converse` plays the driver: it answers each event at once (a message is "queued", the
password "secret" is right, a TLS handshake always succeeds) and reads on.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.inject import checks, protocol, replies
from relay.inject.data import DataReader
from relay.inject.protocol import (
    BEFORE_HELO,
    COMMANDS,
    HAVE_RECIPIENTS,
    HAVE_SENDER,
    IN_CHUNKS,
    PHASES,
    READY,
    CheckCredentials,
    Close,
    Event,
    MessageComplete,
    MessageRefused,
    Session,
    StartTLS,
)
from relay.inject.settings import InjectSettings, IPNetwork, ListenerSettings, parse_network

INSIDE = ipaddress.ip_address("10.0.0.1")
OUTSIDE = ipaddress.ip_address("192.0.2.9")
GREETING = b"220 relay.test ESMTP relay\r\n"


@dataclasses.dataclass
class Rules:
    settings: InjectSettings
    relay_hosts: tuple[IPNetwork, ...]
    refused: frozenset[str] = frozenset()  # recipients "on the suppression list"

    def suppressed(self, client: object, address: str) -> str | None:
        return replies.suppressed(address) if address in self.refused else None


def rules(**overrides: object) -> Rules:
    base = InjectSettings(
        listeners=(ListenerSettings("127.0.0.1:0"),), hostname="relay.test", max_message_size=2000
    )
    settings = dataclasses.replace(base, **overrides)  # type: ignore[arg-type]
    return Rules(settings, (parse_network("10.0.0.0/8"),))


def session(
    *,
    client: ipaddress.IPv4Address | ipaddress.IPv6Address | None = INSIDE,
    tls: bool = False,
    auth: bool = False,
    **overrides: object,
) -> Session:
    machine = Session(
        rules(**overrides),
        hostname="relay.test",
        client=client,
        tls_available=tls,
        mechanisms=("PLAIN", "LOGIN") if auth else (),
    )
    assert machine.take_output() == GREETING
    return machine


def converse(machine: Session, chunks: Iterable[bytes]) -> tuple[bytes, list[Event]]:
    """Feed `chunks` one by one, answering every event as a driver would."""
    out: list[bytes] = []
    events: list[Event] = []
    queued = 0
    for chunk in chunks:
        event = machine.receive(chunk)
        while event is not None:
            events.append(event)
            if isinstance(event, MessageComplete):
                queued += 1
                machine.message_done(replies.QUEUED.format(id=f"m{queued}"))
            elif isinstance(event, MessageRefused):
                machine.message_done(event.reply)
            elif isinstance(event, CheckCredentials):
                machine.credentials_checked(event.password == b"secret", event.login.decode())
            elif isinstance(event, StartTLS):
                out.append(machine.take_output())
                out.append(b"<TLS>")
                machine.tls_started()
            else:
                break
            event = machine.receive()
        out.append(machine.take_output())
        if machine.closed:
            break
    return b"".join(out), events


def lines(*commands: str) -> list[bytes]:
    return [command.encode() + b"\r\n" for command in commands]


def replies_of(machine: Session, *commands: str) -> list[str]:
    """Each command's reply, one by one (multi-line replies joined by newlines)."""
    result = []
    for command in commands:
        out, _ = converse(machine, lines(command))
        result.append(out.decode().rstrip("\r\n").replace("\r\n", "\n"))
    return result


def ehlo(machine: Session) -> None:
    assert replies_of(machine, "EHLO client.test")[0].startswith("250-relay.test")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PLAIN = b64(b"\0alice\0secret")  # AUTH PLAIN's initial response for alice / secret


TRANSACTION = (
    b"MAIL FROM:<sender@example.test>\r\n"
    b"RCPT TO:<one@example.com>\r\n"
    b"RCPT TO:<two@example.com>\r\n"
    b"DATA\r\n"
    b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\n"
)


# --- the command table -------------------------------------------------------------------


def _into(phase: int) -> Session:
    machine = session()
    if phase >= READY:
        ehlo(machine)
    if phase >= HAVE_SENDER:
        replies_of(machine, "MAIL FROM:<s@example.test>")
    if phase >= HAVE_RECIPIENTS:
        replies_of(machine, "RCPT TO:<r@example.com>")
    if phase >= IN_CHUNKS:
        assert converse(machine, [b"BDAT 3\r\nabc"])[0] == b"250 2.0.0 3 octets received\r\n"
    assert machine.phase == phase
    return machine


_REFUSED = [
    (row.verb, phase, refusal)
    for row in COMMANDS
    for phase, refusal in enumerate(row.refusals)
    if refusal is not None
]


@pytest.mark.parametrize(
    ("verb", "phase", "refusal"), _REFUSED, ids=[f"{v}-{PHASES[p]}" for v, p, _ in _REFUSED]
)
def test_a_command_out_of_its_phase_gets_the_tables_reply(
    verb: str, phase: int, refusal: str
) -> None:
    machine = _into(phase)
    argument = {"MAIL": " FROM:<a@example.test>", "RCPT": " TO:<b@example.com>"}.get(verb, " x")
    for line in (verb, verb + argument):
        assert replies_of(machine, line) == [refusal]
        assert machine.phase == phase  # nothing changed


def test_the_table_names_a_handler_for_every_command() -> None:
    for row in COMMANDS:
        assert callable(getattr(Session, f"_{row.verb.lower()}")), row.verb
        assert len(row.refusals) == len(PHASES)
    assert [row.verb for row in COMMANDS if row.refusals[READY] is not None] == [
        "RCPT",
        "DATA",
        "BDAT",
    ]


def test_help_lists_the_table() -> None:
    machine = session()
    assert replies_of(machine, "HELP", "HELP mail", "HELP EXPN", "HELP STARTTLS") == [
        "250 2.0.0 Supported commands: AUTH BDAT DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
        "250 2.0.0 Syntax: MAIL FROM: <address>",
        "501 5.5.4 Supported commands: AUTH BDAT DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
        "501 5.5.4 Supported commands: AUTH BDAT DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
    ]
    ehlo(machine)
    assert replies_of(machine, "HELP RCPT") == [
        "250 2.0.0 Syntax: RCPT TO: <address> [SP <mail-parameters>]"
    ]
    assert "RSET STARTTLS VRFY" in replies_of(session(tls=True), "HELP")[0]


def test_simple_commands() -> None:
    machine = session()
    assert replies_of(machine, "NOOP anything", "RSET x", "QUIT x", "VRFY", "EXPN a") == [
        "250 2.0.0 OK",
        "501 5.5.4 Syntax: RSET",
        "501 5.5.4 Syntax: QUIT",
        "501 5.5.4 Syntax: VRFY <address>",
        "502 5.5.1 EXPN not implemented",
    ]
    assert replies_of(machine, "VRFY <a@b.example>", "VRFY nope") == [
        "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery",
        "502 5.5.1 Could not VRFY nope",
    ]
    assert replies_of(machine, "HELO", "EHLO", "HELO client.test") == [
        "501 5.5.4 Syntax: HELO hostname",
        "501 5.5.4 Syntax: EHLO hostname",
        "250 relay.test",
    ]
    out, events = converse(machine, lines("QUIT", "NOOP"))
    assert out == b"221 2.0.0 Bye\r\n" and events == [Close()]
    assert machine.closed and machine.receive(b"NOOP\r\n") is None
    assert machine.take_output() == b""


def test_ehlo_keywords_are_the_extension_table() -> None:
    assert replies_of(session(), "EHLO c") == [
        "250-relay.test\n250-SIZE 2000\n250-PIPELINING\n250-ENHANCEDSTATUSCODES\n"
        "250-8BITMIME\n250-DSN\n250-CHUNKING\n250-SMTPUTF8\n250 HELP"
    ]
    assert "250-SIZE\n" in replies_of(session(max_message_size=0), "EHLO c")[0]
    machine = session(tls=True, auth=True)
    assert "250-CHUNKING\n250-STARTTLS\n250-SMTPUTF8\n250 HELP" in replies_of(machine, "EHLO c")[0]
    converse(machine, lines("STARTTLS"))
    # REQUIRETLS only over TLS (RFC 8689 4.1)
    assert (
        "250-CHUNKING\n250-AUTH LOGIN PLAIN\n250-SMTPUTF8\n250-REQUIRETLS\n250 HELP"
        in (replies_of(machine, "EHLO c")[0])
    )


def test_unknown_commands_and_bad_lines() -> None:
    machine = session()
    out, events = converse(
        machine, [b"\r\n", b"NO\xe9P\r\n", b"NOOP \xe9\r\n", b"noop\n", b"FOO\r\n", b"bar x\r\n"]
    )
    assert out.decode("ascii").splitlines() == [
        "500 5.5.2 Error: bad syntax",
        "500 5.5.2 Error: bad syntax",
        "500 5.5.2 Error: strict ASCII mode",
        "250 2.0.0 OK",
        '500 5.5.1 Error: command "FOO" not recognized',
        '500 5.5.1 Error: command "BAR" not recognized',
    ]
    out, events = converse(machine, lines("X1", "X2", "X3", "NOOP"))
    assert out.decode().splitlines() == [
        '500 5.5.1 Error: command "X1" not recognized',
        '500 5.5.1 Error: command "X2" not recognized',
        "502 5.5.1 Too many unrecognized commands, goodbye.",
    ]
    assert events == [Close()]


def test_line_limits() -> None:
    machine = session()
    assert replies_of(machine, "NOOP " + "x" * 505, "NOOP " + "x" * 506) == [
        "250 2.0.0 OK",
        replies.COMMAND_TOO_LONG,
    ]
    ehlo(machine)
    # 510 + SIZE's 26 + DSN's 115 + SMTPUTF8's 10 (REQUIRETLS's 11 only over TLS)
    mail = "MAIL FROM:<a@example.test> SIZE=1"
    assert replies_of(machine, mail + " " * (661 - len(mail)))[0] == replies.SENDER_OK
    assert replies_of(machine, "RSET", mail + " " * (662 - len(mail)))[1] == (
        replies.COMMAND_TOO_LONG
    )
    rcpt = "RCPT TO:<b@example.com> NOTIFY=NEVER"  # 510 + DSN's 535
    assert (
        replies_of(machine, "RSET", "MAIL FROM:<a@example.test>", rcpt + " " * (1045 - len(rcpt)))[
            2
        ]
        == replies.RECIPIENT_OK
    )
    assert replies_of(machine, rcpt + " " * (1046 - len(rcpt)))[0] == replies.COMMAND_TOO_LONG
    assert replies_of(machine, "NOOP " + "x" * 506)[0] == replies.COMMAND_TOO_LONG


def test_an_endless_line_is_dropped_as_it_comes_then_refused() -> None:
    machine = session()
    for _ in range(100):
        assert machine.receive(b"x" * 10_000) is None
        assert machine.buffered <= protocol.READ_LIMIT
    assert machine.take_output() == b""
    out, _ = converse(machine, [b"yyy\r\nNOOP\r\n"])
    assert out == b"500 5.5.2 Command line too long\r\n250 2.0.0 OK\r\n"


# --- each check from its one place ---------------------------------------------------------


def test_every_mail_passes_the_sender_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk shape too (the old fast path skipped on_mail)."""
    seen: list[tuple[str, tuple[str, ...]]] = []

    def refuse(self: Session, address: str, options: tuple[str, ...]) -> str | None:
        seen.append((address, options))
        return "550 5.7.1 Sender refused"

    monkeypatch.setattr(Session, "_check_sender", refuse)
    machine = session()
    ehlo(machine)
    out, _ = converse(
        machine,
        [
            b"MAIL FROM:<bulk@example.test>\r\nMAIL FROM:<>\r\n",
            b'MAIL FROM:<"odd"@example.test> SIZE=10 BODY=8BITMIME\r\n',
            b"mail from: <bulk@example.test>\r\n",
        ],
    )
    assert out.decode().splitlines() == ["550 5.7.1 Sender refused"] * 4
    assert seen == [
        ("bulk@example.test", ()),
        ("<>", ()),
        ('"odd"@example.test', ("SIZE=10", "BODY=8BITMIME")),
        ("bulk@example.test", ()),
    ]
    assert machine.phase == READY


def test_every_rcpt_passes_the_recipient_check(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bool, bool, int]] = []
    real = checks.check_recipient

    def spy(null_path: bool, *, may_relay: bool, accepted: int, max_recipients: int) -> str | None:
        seen.append((null_path, may_relay, accepted))
        return real(
            null_path, may_relay=may_relay, accepted=accepted, max_recipients=max_recipients
        )

    monkeypatch.setattr(checks, "check_recipient", spy)
    machine = session(max_recipients=2)
    ehlo(machine)
    out, _ = converse(
        machine,
        lines(
            "MAIL FROM:<s@example.test>",
            "RCPT TO:<a@example.com>",
            'RCPT TO:<"q u"@example.com>',
            "RCPT TO:<c@example.com>",
            "RCPT TO:<>",
        ),
    )
    assert out.decode().splitlines()[1:] == [
        replies.RECIPIENT_OK,
        replies.RECIPIENT_OK,
        replies.TOO_MANY_RECIPIENTS,
        replies.NULL_RECIPIENT,
    ]
    assert seen == [(False, True, 0), (False, True, 1), (False, True, 2), (True, True, 2)]
    outsider = session(client=OUTSIDE)
    ehlo(outsider)
    assert replies_of(outsider, "MAIL FROM:<s@example.test>", "RCPT TO:<a@example.com>") == [
        replies.SENDER_OK,
        replies.RELAY_DENIED,
    ]


def test_every_path_is_parsed_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    real = Session._path

    def spy(self: Session, text: str, utf8: bool = False) -> tuple[str, str] | str:
        parsed.append(text)
        return real(self, text, utf8)

    monkeypatch.setattr(Session, "_path", spy)
    machine = session()
    ehlo(machine)
    replies_of(machine, "MAIL FROM:<a@example.test>", "RCPT TO:<b@example.com>", "VRFY <c@d>")
    assert parsed == ["<a@example.test>", "<b@example.com>", "<c@d>"]


def test_every_message_is_read_by_one_data_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[int, bool]] = []

    def reader(*, max_size: int, normalize: bool = False) -> DataReader:
        made.append((max_size, normalize))
        return DataReader(max_size=max_size, normalize=normalize)

    monkeypatch.setattr(protocol, "DataReader", reader)
    machine = session(normalize_bare_line_endings=True)
    ehlo(machine)
    converse(machine, [TRANSACTION, TRANSACTION])
    assert made == [(2000, True), (2000, True)]


@pytest.mark.parametrize(
    ("params", "reply"),
    [
        ("SIZE=100", replies.SENDER_OK),
        ("size=2000 body=8bitmime", replies.SENDER_OK),
        ("SIZE=2001", replies.MESSAGE_TOO_BIG),
        ("SIZE=abc", replies.MAIL_USAGE_ESMTP),
        ("SIZE", replies.MAIL_USAGE_ESMTP),
        ("SIZE=", replies.MAIL_USAGE_ESMTP),
        ("X-Y=1", replies.MAIL_USAGE_ESMTP),
        ("BODY=BINARYMIME", replies.BODY_INVALID),
        ("SMTPUTF8", replies.SENDER_OK),
        ("SMTPUTF8=1", replies.SMTPUTF8_ARGUMENT),
        ("RET=FULL", replies.SENDER_OK),
        ("ret=hdrs ENVID=abc+2B+3D", replies.SENDER_OK),
        ("RET=ALL", replies.RET_INVALID),
        ("RET", replies.RET_INVALID),
        ("RET=FULL RET=HDRS", replies.parameter_twice("RET")),
        ("ENVID=" + "x" * 100, replies.SENDER_OK),
        ("ENVID=" + "x" * 101, replies.ENVID_INVALID),
        ("ENVID=a+2b", replies.ENVID_INVALID),  # hex digits are upper case
        ("ENVID=a+2", replies.ENVID_INVALID),
        ("ENVID=a+", replies.ENVID_INVALID),
        ("ENVID=a+3D+", replies.ENVID_INVALID),
        ("ENVID", replies.ENVID_INVALID),
        ("REQUIRETLS", replies.REQUIRETLS_NEEDS_TLS),  # not over TLS here
        ("REQUIRETLS=1", replies.REQUIRETLS_ARGUMENT),
        ("NOTIFY=NEVER", "555 5.5.4 MAIL FROM parameters not recognized or not implemented"),
    ],
)
def test_mail_parameters_come_from_the_extension_table(params: str, reply: str) -> None:
    machine = session()
    ehlo(machine)
    assert replies_of(machine, f"MAIL FROM:<a@example.test> {params}") == [reply]


def test_parameters_need_ehlo_and_rcpt_has_none() -> None:
    machine = session()
    replies_of(machine, "HELO c")
    assert replies_of(machine, "MAIL FROM:<a@example.test> SIZE=1") == [
        "501 5.5.4 Syntax: MAIL FROM: <address>"
    ]
    ehlo(machine)
    assert replies_of(machine, "MAIL FROM:<a@example.test>", "RCPT TO:<b@example.com> RET=FULL")[
        1
    ] == ("555 5.5.4 RCPT TO parameters not recognized or not implemented")


# --- AUTH ----------------------------------------------------------------------------------


def _over_tls() -> Session:
    machine = session(tls=True, auth=True)
    converse(machine, lines("EHLO c", "STARTTLS"))
    ehlo(machine)
    return machine


def test_auth_plain_with_initial_response() -> None:
    machine = _over_tls()
    event = machine.receive(f"AUTH PLAIN {PLAIN}\r\n".encode())
    assert event == CheckCredentials("PLAIN", b"alice", b"secret")
    assert machine.take_output() == b""
    assert machine.receive(b"NOOP\r\n") is None  # kept until the answer
    machine.credentials_checked(True, "alice")
    assert machine.receive() is None
    assert machine.take_output() == b"235 2.7.0 Authentication successful\r\n250 2.0.0 OK\r\n"
    assert machine.authenticated and machine.user == "alice"
    assert replies_of(machine, "AUTH PLAIN x") == [replies.AUTH_ALREADY]


def test_auth_dialogs() -> None:
    machine = _over_tls()
    out, events = converse(machine, lines("AUTH PLAIN", PLAIN))
    assert out == b"334 \r\n235 2.7.0 Authentication successful\r\n"
    assert events == [CheckCredentials("PLAIN", b"alice", b"secret")]

    machine = _over_tls()
    out, events = converse(machine, lines("AUTH LOGIN", b64(b"alice"), b64(b"wrong")))
    assert out == b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" + (
        b"535 5.7.8 Authentication credentials invalid\r\n"
    )
    assert not machine.authenticated
    out, events = converse(machine, lines(f"AUTH LOGIN {b64(b'alice')}", b64(b"secret")))
    assert out == b"334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (["AUTH PLAIN", "*"], ["334 ", replies.AUTH_ABORTED]),
        (
            ["AUTH LOGIN", b64(b"a"), "*"],
            ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "501 5.7.0 Auth aborted"],
        ),
        (["AUTH PLAIN", "!!"], ["334 ", replies.AUTH_BAD_BASE64]),
        (["AUTH PLAIN !!"], [replies.AUTH_BAD_BASE64]),
        ([f"AUTH PLAIN {b64(b'no-nul')}"], [replies.AUTH_CANNOT_SPLIT]),
        (["AUTH"], [replies.AUTH_NO_MECHANISM]),
        (["AUTH PLAIN a b"], [replies.AUTH_TOO_MANY_VALUES]),
        (["AUTH plain"], [replies.AUTH_UNKNOWN_MECHANISM]),
        (["AUTH CRAM-MD5"], [replies.AUTH_UNKNOWN_MECHANISM]),
    ],
)
def test_auth_refusals(script: list[str], expected: list[str]) -> None:
    machine = _over_tls()
    out, events = converse(machine, lines(*script, "NOOP"))
    assert out.decode().splitlines() == [*expected, replies.OK]
    assert events == [] and not machine.authenticated


def test_auth_needs_ehlo_tls_and_a_credentials_file() -> None:
    machine = session(tls=True, auth=True)
    assert replies_of(machine, "AUTH PLAIN x", "HELO c", "AUTH PLAIN x") == [
        replies.SEND_EHLO,
        "250 relay.test",
        replies.AUTH_NOT_OFFERED,
    ]
    ehlo(machine)
    assert replies_of(machine, "AUTH PLAIN x") == [replies.AUTH_NEEDS_TLS]
    without = session(tls=True)
    converse(without, lines("STARTTLS"))
    ehlo(without)
    assert replies_of(without, "AUTH PLAIN x") == [replies.AUTH_UNKNOWN_MECHANISM]


def test_auth_lets_an_outsider_relay() -> None:
    machine = session(client=OUTSIDE, tls=True, auth=True)
    converse(machine, lines("EHLO c", "STARTTLS"))
    out, _ = converse(
        machine,
        lines(
            "EHLO c",
            "MAIL FROM:<s@example.test>",
            "RCPT TO:<r@example.com>",
            f"AUTH PLAIN {PLAIN}",
            "RCPT TO:<r@example.com>",
        ),
    )
    assert out.decode().splitlines()[-4:] == [
        replies.SENDER_OK,
        replies.RELAY_DENIED,
        replies.AUTH_OK,
        replies.RECIPIENT_OK,
    ]


# --- STARTTLS ------------------------------------------------------------------------------


def test_starttls_drops_pipelined_plaintext_and_resets_the_session() -> None:
    machine = session(tls=True)
    ehlo(machine)
    event = machine.receive(b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\n")
    assert event == StartTLS()
    assert machine.take_output() == b"220 2.0.0 Ready to start TLS\r\n"
    assert machine.buffered == 0
    assert machine.receive(b"EHLO over.tls\r\n") is None  # came over TLS before the answer
    machine.tls_started()
    assert machine.phase == BEFORE_HELO and machine.tls and machine.helo is None
    assert machine.receive() is None
    assert machine.take_output().startswith(b"250-relay.test\r\n")
    assert machine.helo == "over.tls"
    assert replies_of(machine, "STARTTLS", "STARTTLS x") == [
        replies.TLS_ALREADY_ACTIVE,
        "501 5.5.4 Syntax: STARTTLS",
    ]
    assert replies_of(session(), "STARTTLS") == [replies.TLS_NOT_AVAILABLE]


# --- pipelining and DATA -------------------------------------------------------------------


def test_pipelined_transaction_pauses_at_the_message() -> None:
    machine = session()
    ehlo(machine)
    event = machine.receive(TRANSACTION + b"NOOP\r\n")
    assert machine.take_output() == (
        b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n"
    )
    assert isinstance(event, MessageComplete)
    assert event.sender == "sender@example.test"
    assert event.recipients == ("one@example.com", "two@example.com")
    assert event.content == b"Subject: x\r\n\r\n.dot\r\nbody\r\n"
    assert (event.session.helo, event.session.esmtp, event.session.tls) == (
        "client.test",
        True,
        False,
    )
    assert machine.in_transaction and machine.buffered == len(b"NOOP\r\n")
    assert machine.receive(b"QUIT\r\n") is None  # kept
    machine.message_done("250 2.0.0 OK queued as x")
    assert not machine.in_transaction
    assert machine.receive() == Close()
    assert machine.take_output() == b"250 2.0.0 OK queued as x\r\n250 2.0.0 OK\r\n221 2.0.0 Bye\r\n"


def test_null_sender_is_the_empty_string() -> None:
    machine = session()
    ehlo(machine)
    _, events = converse(machine, [TRANSACTION.replace(b"<sender@example.test>", b"<>")])
    assert isinstance(events[0], MessageComplete) and events[0].sender == ""


SMUGGLING = [b"\n.\n", b"\r.\r", b"\r.\n", b"\n.\r", b"\r\n.\n", b"\n.\r\n", b"\r\n\x00.\r\n"]


@pytest.mark.parametrize("vector", SMUGGLING, ids=repr)
def test_smuggling_vectors_refuse_the_message_and_smuggle_nothing(vector: bytes) -> None:
    machine = session()
    ehlo(machine)
    attack = b"MAIL FROM:<evil@example.test>\r\nRCPT TO:<v@example.com>\r\nDATA\r\n"
    out, events = converse(
        machine,
        [TRANSACTION.replace(b"body\r\n", b"body" + vector + attack + b"x\r\n"), b"NOOP\r\n"],
    )
    assert len(events) == 1 and isinstance(events[0], MessageRefused)
    assert events[0].reply.startswith("550 5.5.2")
    assert out.decode().splitlines()[-2:] == [events[0].reply, replies.OK]


def test_data_limits() -> None:
    machine = session(max_message_size=100)
    ehlo(machine)
    big = TRANSACTION.replace(b"body\r\n", b"y" * 70 + b"\r\n" + b"z" * 70 + b"\r\n")
    long_line = TRANSACTION.replace(b"body", b"w" * 999)
    _, events = converse(machine, [big, long_line, TRANSACTION])
    assert events[:2] == [
        MessageRefused(replies.MESSAGE_TOO_BIG),
        MessageRefused(replies.LINE_TOO_LONG),
    ]
    assert isinstance(events[2], MessageComplete)
    assert replies_of(
        machine, "MAIL FROM:<a@example.test>", "RCPT TO:<b@example.com>", "DATA x"
    ) == [
        replies.SENDER_OK,
        replies.RECIPIENT_OK,
        replies.DATA_SYNTAX,
    ]


def test_message_done_needs_a_message() -> None:
    machine = session()
    with pytest.raises(RuntimeError):
        machine.message_done("250 2.0.0 OK")
    with pytest.raises(RuntimeError):
        machine.credentials_checked(True)
    with pytest.raises(RuntimeError):
        machine.tls_started()


def test_commands_counts_what_the_idle_deadline_restarts_at() -> None:
    machine = session()
    converse(machine, [*lines("EHLO c", "NOOP", "FOO", ""), b"MAIL FROM:<a@example.test>\r\n"])
    assert machine.commands == 3  # EHLO, NOOP, MAIL: not the unknown command, not the empty line


def test_reply_texts_are_aiosmtpds_with_enhanced_codes() -> None:
    """What relay used to send when aiosmtpd's loop ran these commands."""
    stock = {
        replies.SEND_HELO: "503 Error: send HELO first",
        replies.SEND_EHLO: "503 Error: send EHLO first",
        replies.NEED_MAIL: "503 Error: need MAIL command",
        replies.NESTED_MAIL: "503 Error: nested MAIL command",
        replies.NEED_RCPT: "503 Error: need RCPT command",
        replies.DATA_SYNTAX: "501 Syntax: DATA",
        replies.BAD_SYNTAX: "500 Error: bad syntax",
        replies.STRICT_ASCII: "500 Error: strict ASCII mode",
        replies.TOO_MANY_UNKNOWN: "502 5.5.1 Too many unrecognized commands, goodbye.",
        replies.VRFY_UNVERIFIED: (
            "252 Cannot VRFY user, but will accept message and attempt delivery"
        ),
        replies.EXPN_NOT_IMPLEMENTED: "502 EXPN not implemented",
        replies.MAIL_USAGE_ESMTP: "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
        replies.BODY_INVALID: "501 Error: BODY can only be one of 7BIT, 8BITMIME",
        replies.SMTPUTF8_ARGUMENT: "501 Error: SMTPUTF8 takes no arguments",
        replies.SMTPUTF8_DISABLED: "501 Error: SMTPUTF8 disabled",
        replies.TLS_READY: "220 Ready to start TLS",
        replies.TLS_NOT_AVAILABLE: "454 TLS not available",
        replies.AUTH_NOT_OFFERED: "500 Error: command 'AUTH' not recognized",
        replies.AUTH_ALREADY: "503 Already authenticated",
        replies.AUTH_NO_MECHANISM: "501 Not enough value",
        replies.AUTH_TOO_MANY_VALUES: "501 Too many values",
        replies.OK: "250 OK",
        replies.BYE: "221 Bye",
        replies.COMMAND_TOO_LONG: "500 Command line too long",
        replies.unknown_command("X"): '500 Error: command "X" not recognized',
        replies.unknown_parameters(
            "MAIL"
        ): "555 MAIL FROM parameters not recognized or not implemented",
        replies.unknown_parameters(
            "RCPT"
        ): "555 RCPT TO parameters not recognized or not implemented",
        replies.cannot_vrfy("x"): "502 Could not VRFY x",
        replies.help_list(250, "A"): "250 Supported commands: A",
        replies.help_list(501, "A"): "501 Supported commands: A",
        replies.help_usage("A"): "250 Syntax: A",
        replies.usage("A"): "501 Syntax: A",
    }
    for ours, theirs in stock.items():
        assert replies.enhance(theirs) == ours


# --- however the bytes are cut -------------------------------------------------------------

_PIECES = [
    b"EHLO client.test\r\n",
    b"HELO client.test\r\n",
    b"MAIL FROM:<a@example.test>\r\n",
    b"MAIL FROM:<a@example.test> SIZE=10\r\n",
    b"RCPT TO:<b@example.com>\r\n",
    b"RCPT TO:<bad\r\n",
    b"DATA\r\n",
    b"Subject: s\r\n\r\nbody\r\n..x\r\n.\r\n",
    b"bare\nlf\r\n.\r\n",
    b"NOOP\r\n",
    b"RSET\r\n",
    b"HELP\n",
    b"FOO\r\n",
    b"\r\n",
    b"NOOP " + b"x" * 1200 + b"\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    base64.b64encode(b"\0alice\0secret") + b"\r\n",
    b"AUTH LOGIN " + base64.b64encode(b"alice") + b"\r\n",
    b"*\r\n",
    b"QUIT\r\n",
    # BDAT: chunks with awkward content (a dot line, CRLF.CRLF, a bare LF, a command)
    b"BDAT 9\r\nS: s\r\n\r\n.",
    b"BDAT 7\r\n\r\n.\r\nx\r",
    b"BDAT 12 LAST\r\n\nRSET\r\nQUIT\r\n",
    b"BDAT 5 LAST\r\nbad\nx",
    b"BDAT 0 LAST\r\n",
    b"BDAT x\r\n",
    b"MAIL FROM:<a@example.test> RET=HDRS ENVID=e+2B1\r\n",
    b"RCPT TO:<c@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c+40example.com\r\n",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=25), st.data())
def test_the_same_replies_and_events_however_the_bytes_are_split(
    pieces: list[bytes], data: st.DataObject
) -> None:
    """Bytes after STARTTLS come in a read of their own (over TLS): the cut there is kept."""
    script = b"".join(pieces)
    tls_cuts = {
        sum(map(len, pieces[: n + 1])) for n, piece in enumerate(pieces) if piece == b"STARTTLS\r\n"
    }
    cuts = sorted(tls_cuts | set(data.draw(st.lists(st.integers(0, len(script)), max_size=12))))
    whole = converse(session(tls=True, auth=True), _cut(script, sorted(tls_cuts)))
    split = converse(session(tls=True, auth=True), _cut(script, cuts))
    bytewise = converse(session(tls=True, auth=True), [bytes([b]) for b in script])
    assert split == whole
    assert bytewise == whole


def _cut(script: bytes, cuts: list[int]) -> list[bytes]:
    return [script[a:b] for a, b in zip([0, *cuts], [*cuts, len(script)], strict=True)]


# --- ESMTP extensions: DSN, SMTPUTF8, REQUIRETLS, CHUNKING --------------------------------


def _message(machine: Session, script: bytes) -> tuple[bytes, list[Event]]:
    return converse(machine, [script])


def test_dsn_parameters_are_kept_per_message_and_per_recipient() -> None:
    machine = session()
    ehlo(machine)
    _, events = _message(
        machine,
        b"MAIL FROM:<a@example.test> RET=hdrs ENVID=QQ+2B1\r\n"
        b"RCPT TO:<one@example.com>\r\n"
        b"RCPT TO:<two@example.com> NOTIFY=delay,success ORCPT=rfc822;two+40example.com\r\n"
        b"RCPT TO:<three@example.com> NOTIFY=NEVER\r\n"
        b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
    )
    (event,) = events
    assert isinstance(event, MessageComplete) and event.esmtp is not None
    assert event.esmtp.ret == "HDRS" and event.esmtp.envid == "QQ+2B1"
    assert event.esmtp.envid_text == "QQ+1"
    assert event.esmtp.notify == (None, "SUCCESS,DELAY", "NEVER")
    assert event.esmtp.orcpt == (None, "rfc822;two+40example.com", None)
    assert event.esmtp.original_recipient(1) == "rfc822;two@example.com"
    assert not event.esmtp.smtputf8 and not event.esmtp.requiretls


def test_a_message_without_parameters_has_none() -> None:
    _, events = _message(session(), b"EHLO c\r\n" + TRANSACTION)
    assert isinstance(events[0], MessageComplete) and events[0].esmtp is None


@pytest.mark.parametrize(
    ("params", "reply"),
    [
        ("NOTIFY=NEVER", replies.RECIPIENT_OK),
        ("notify=failure,success,delay", replies.RECIPIENT_OK),
        ("NOTIFY=NEVER,SUCCESS", replies.NOTIFY_INVALID),
        ("NOTIFY=SUCCESS,SUCCESS", replies.NOTIFY_INVALID),
        ("NOTIFY=SOMETIMES", replies.NOTIFY_INVALID),
        ("NOTIFY=", "501 5.5.4 Syntax: RCPT TO: <address> [SP <mail-parameters>]"),
        ("NOTIFY", replies.NOTIFY_INVALID),
        ("ORCPT=rfc822;b@example.com", replies.RECIPIENT_OK),
        ("ORCPT=rfc822;b+40example.com", replies.RECIPIENT_OK),
        ("ORCPT=rfc822;" + "x" * 493, replies.RECIPIENT_OK),  # 500 characters in all
        ("ORCPT=rfc822;" + "x" * 494, replies.ORCPT_INVALID),
        ("ORCPT=rfc822;", replies.ORCPT_INVALID),
        ("ORCPT=b@example.com", replies.ORCPT_INVALID),  # no addr-type
        ("ORCPT=;b@example.com", replies.ORCPT_INVALID),
        ("ORCPT=rfc822;a+4", replies.ORCPT_INVALID),
        ("ORCPT=rfc822;a+zz", replies.ORCPT_INVALID),
        ("ORCPT=rfc822;a=b", replies.ORCPT_INVALID),  # "=" is not an xchar
        ("NOTIFY=NEVER NOTIFY=NEVER", replies.parameter_twice("NOTIFY")),
    ],
)
def test_rcpt_dsn_parameters(params: str, reply: str) -> None:
    machine = session()
    ehlo(machine)
    assert (
        replies_of(machine, "MAIL FROM:<a@example.test>", f"RCPT TO:<b@example.com> {params}")[1]
        == reply
    )


def test_utf8_addresses_need_smtputf8_and_domains_become_a_labels() -> None:
    machine = session()
    ehlo(machine)
    assert replies_of(machine, "MAIL FROM:<dörte@bücher.example>") == [replies.UTF8_NEEDS_SMTPUTF8]
    assert replies_of(machine, "MAIL FROM:<a@example.test>", "RCPT TO:<jürgen@example.com>") == [
        replies.SENDER_OK,
        replies.UTF8_NEEDS_SMTPUTF8,
    ]
    out, events = _message(
        machine,
        "RSET\r\nMAIL FROM:<dörte@Bücher.example> SMTPUTF8\r\n"
        "RCPT TO:<jürgen@例え.jp>\r\nRCPT TO:<x@xn--bcher-kva.example>\r\n"
        "RCPT TO:<y@i♥.example>\r\n"
        "DATA\r\nSubject: Grüße\r\n\r\nbody\r\n.\r\n".encode(),
    )
    assert out.decode().splitlines()[4] == replies.BAD_IDN
    (event,) = events
    assert isinstance(event, MessageComplete)
    assert event.sender == "dörte@xn--bcher-kva.example"
    assert event.recipients == ("jürgen@xn--r8jz45g.jp", "x@xn--bcher-kva.example")
    assert event.esmtp is not None and event.esmtp.smtputf8
    assert "Grüße".encode() in event.content


def test_utf8_only_in_addresses_of_an_ehlo_session() -> None:
    machine = session()
    replies_of(machine, "HELO c")
    assert replies_of(machine, "MAIL FROM:<dörte@bücher.example> SMTPUTF8") == [
        replies.STRICT_ASCII
    ]
    ehlo(machine)
    assert replies_of(machine, "NOOP dörte") == [replies.STRICT_ASCII]
    assert replies_of(machine, "MAIL FROM:<a@example.test> SMTPUTF8 ENVID=ü") == [
        replies.NON_ASCII_PARAMETER
    ]


def test_requiretls_only_over_tls_and_kept() -> None:
    machine = session(tls=True)
    converse(machine, lines("EHLO c", "STARTTLS"))
    ehlo(machine)
    _, events = _message(machine, TRANSACTION.replace(b">\r\n", b"> REQUIRETLS\r\n", 1))
    (event,) = events
    assert isinstance(event, MessageComplete) and event.esmtp is not None
    assert event.esmtp.requiretls


BDAT_ENVELOPE = b"EHLO c\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.com>\r\n"


def test_bdat_chunks_make_one_message_and_the_last_one_waits_for_the_spool() -> None:
    machine = session()
    event = machine.receive(
        BDAT_ENVELOPE + b"BDAT 12\r\nSubject: x\r\n" + b"BDAT 9 LAST\r\n\r\n.\r\nbody"
    )
    assert isinstance(event, MessageComplete)
    # the content exactly as sent (a dot line is text), a CRLF added at the end
    assert event.content == b"Subject: x\r\n\r\n.\r\nbody\r\n"
    out = machine.take_output().decode().splitlines()
    assert out[-1] == "250 2.0.0 12 octets received"  # the LAST chunk's 250 is not said yet
    machine.message_done(replies.QUEUED.format(id="m1"))
    assert machine.take_output() == b"250 2.0.0 OK queued as m1\r\n"


def test_bdat_content_meets_the_data_rules() -> None:
    for content, reply in [
        (b"a\nb\r\n", replies.BARE_LINE_ENDING),
        (b"a\rb\r\n", replies.BARE_LINE_ENDING),
        (b"a\x00\r\n", replies.NUL_IN_DATA),
        (b"x" * 999 + b"\r\n", replies.LINE_TOO_LONG),
        (b"x\r\n" * 700, replies.MESSAGE_TOO_BIG),  # max_message_size 2000
    ]:
        out, events = converse(
            session(), [BDAT_ENVELOPE + b"BDAT %d LAST\r\n" % len(content) + content + b"NOOP\r\n"]
        )
        assert events == [MessageRefused(reply)], content
        assert out.decode().splitlines()[-2:] == [reply, "250 2.0.0 OK"]


def test_a_refused_chunk_ends_the_transaction_and_later_chunks_are_dropped() -> None:
    out, events = converse(
        session(),
        [BDAT_ENVELOPE + b"BDAT 5\r\na\nb\r\n" + b"BDAT 6 LAST\r\nRSET\r\n" + b"NOOP\r\n"],
    )
    assert events == [MessageRefused(replies.BARE_LINE_ENDING)]
    assert out.decode().splitlines()[-3:] == [
        replies.BARE_LINE_ENDING,
        replies.NEED_MAIL,  # the pipelined chunk's octets were read, not run
        "250 2.0.0 OK",
    ]


def test_refused_bdat_octets_are_never_commands() -> None:
    out, events = converse(session(), [b"EHLO c\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"])
    assert events == []
    assert out.decode().splitlines()[-2:] == [replies.NEED_MAIL, "250 2.0.0 OK"]


def test_between_chunks_only_bdat_rset_noop_quit() -> None:
    machine = session()
    out, _ = converse(
        machine,
        [
            BDAT_ENVELOPE + b"BDAT 3\r\nabc",
            b"DATA\r\n",
            b"RCPT TO:<c@example.com>\r\n",
            b"RSET\r\n",
        ],
    )
    assert out.decode().splitlines()[-4:] == [
        "250 2.0.0 3 octets received",
        replies.IN_BDAT,
        replies.IN_BDAT,
        "250 2.0.0 OK",
    ]
    assert machine.phase == READY
    assert replies_of(machine, "BDAT 1 LASTX", "BDAT -1", "BDAT") == [replies.NEED_MAIL] * 3


def test_bdat_syntax() -> None:
    machine = session()
    converse(machine, [BDAT_ENVELOPE])
    assert (
        replies_of(machine, "BDAT", "BDAT x", "BDAT 1 LAST x", "BDAT 1 FIRST")
        == [replies.BDAT_SYNTAX] * 4
    )


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"\r\n")),
    st.lists(st.integers(0, 300), max_size=6),
    st.data(),
)
def test_bdat_is_data_however_the_content_is_chunked_and_the_bytes_cut(
    content: bytes, chunk_cuts: list[int], data: st.DataObject
) -> None:
    """A message sent in BDAT chunks (cut anywhere) is accepted or refused exactly as the
    same message sent with DATA, and however the bytes arrive."""
    stuffed = (b"." + content if content.startswith(b".") else content).replace(b"\r\n.", b"\r\n..")
    ending = b"" if content.endswith(b"\r\n") or not content else b"\r\n"
    via_data = converse(session(), [BDAT_ENVELOPE + b"DATA\r\n" + stuffed + ending + b".\r\n"])
    bounds = sorted({min(c, len(content)) for c in chunk_cuts})
    pieces = _cut(content, bounds)
    script = b"".join(
        b"BDAT %d%s\r\n" % (len(p), b" LAST" if n == len(pieces) - 1 else b"") + p
        for n, p in enumerate(pieces)
    )
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(script)), max_size=8))))
    via_bdat = converse(session(), _cut(BDAT_ENVELOPE + script, cuts))
    events = via_bdat[1]
    assert events == via_data[1] or (
        # a refused chunk before the last is answered at once: same refusal, fewer replies
        isinstance(events[0], MessageRefused) and events == via_data[1]
    )
    if isinstance(events[0], MessageComplete):
        assert via_bdat[0].endswith(b"250 2.0.0 OK queued as m1\r\n")


def test_rcpt_refuses_a_suppressed_recipient_and_takes_the_others() -> None:
    machine = Session(
        dataclasses.replace(rules(), refused=frozenset({"gone@x.test"})),
        hostname="relay.test",
        client=INSIDE,
        tls_available=False,
        mechanisms=(),
    )
    machine.take_output()
    out, events = converse(
        machine,
        lines("EHLO c", "MAIL FROM:<s@y.test>", "RCPT TO:<gone@x.test>", "RCPT TO:<ok@x.test>")
        + lines("DATA")
        + [b"Subject: s\r\n\r\nbody\r\n.\r\n"],
    )
    assert replies.suppressed("gone@x.test").encode() + b"\r\n" in out
    (done,) = [e for e in events if isinstance(e, MessageComplete)]
    assert done.recipients == ("ok@x.test",)
