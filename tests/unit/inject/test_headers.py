from __future__ import annotations

import datetime

from relay.inject import headers, replies
from relay.inject.message import Prepared, Reception, prepare

WHEN = datetime.datetime(2025, 7, 1, 12, 0, 0, tzinfo=datetime.UTC)
GROUPS = {"default": frozenset({"default"}), "marketing": frozenset({"m1"})}


def reception(**overrides: object) -> Reception:
    values: dict[str, object] = {
        "client_ip": "192.0.2.1",
        "helo": "client.example",
        "esmtp": True,
        "tls": False,
        "authenticated": False,
        "recipients": ("r@example.com",),
        "queue_id": "0123abcd",
        "received_at": WHEN,
        "listener_group": None,
        "listener_binding": None,
    }
    values.update(overrides)
    return Reception(**values)  # type: ignore[arg-type]


def test_parse_fields_folding_and_rest() -> None:
    header = headers.parse(b"A: 1\r\nB: two\r\n  lines\r\nC:3\r\n\r\nbody\r\nX: no\r\n")
    assert [f.name for f in header.fields] == ["A", "B", "C"]
    assert header.fields[1].raw == b"B: two\r\n  lines\r\n"
    assert header.fields[1].value == "two  lines"
    assert header.rest == b"\r\nbody\r\nX: no\r\n"


def test_parse_stops_at_a_non_field_line() -> None:
    header = headers.parse(b"A: 1\r\nnot a field\r\nB: 2\r\n")
    assert [f.name for f in header.fields] == ["A"]
    assert header.rest == b"not a field\r\nB: 2\r\n"
    assert headers.parse(b"").fields == ()
    assert headers.parse(b"\r\nbody\r\n").rest == b"\r\nbody\r\n"


def test_named_without_and_render() -> None:
    header = headers.parse(b"x-binding: a\r\nSubject: s\r\nX-BINDING: b\r\n\r\nbody\r\n")
    assert len(header.named("X-Binding")) == 2
    assert header.without("X-Binding").render(prepend=(b"P: 1\r\n",), append=(b"Z: 9\r\n",)) == (
        b"P: 1\r\nSubject: s\r\nZ: 9\r\n\r\nbody\r\n"
    )


def test_received_field_forms() -> None:
    single = headers.received(
        helo="client.example",
        client_ip="192.0.2.1",
        hostname="relay.test",
        protocol="ESMTPSA",
        queue_id="abc",
        recipients=("r@example.com",),
        when=WHEN,
    )
    assert single == (
        b"Received: from client.example ([192.0.2.1])\r\n"
        b"\tby relay.test (relay) with ESMTPSA id abc\r\n"
        b"\tfor <r@example.com>; Tue, 01 Jul 2025 12:00:00 +0000\r\n"
    )
    many = headers.received(
        helo=None,
        client_ip="2001:db8::1",
        hostname="relay.test",
        protocol="SMTP",
        queue_id="abc",
        recipients=("a@x", "b@y"),
        when=WHEN,
    )
    assert many == (
        b"Received: from unknown ([IPv6:2001:db8::1])\r\n"
        b"\tby relay.test (relay) with SMTP id abc;\r\n"
        b"\tTue, 01 Jul 2025 12:00:00 +0000\r\n"
    )


def test_received_sanitises_the_helo_name() -> None:
    field = headers.received(
        helo="evil)\rX-Injected: 1 (x",
        client_ip="192.0.2.1",
        hostname="relay.test",
        protocol="ESMTP",
        queue_id="abc",
        recipients=(),
        when=WHEN,
    )
    first = field.split(b"\r\n")[0]
    assert first == b"Received: from evil??X-Injected:?1??x ([192.0.2.1])"


def test_protocol_names() -> None:
    assert reception(esmtp=False).protocol == "SMTP"
    assert reception().protocol == "ESMTP"
    assert reception(tls=True).protocol == "ESMTPS"
    assert reception(tls=True, authenticated=True).protocol == "ESMTPSA"


def test_prepare_adds_trace_and_message_id_and_strips_binding_headers() -> None:
    content = b"X-Binding-Group: marketing\r\nSubject: s\r\nX-Binding: m1\r\n\r\nbody\r\n"
    result = prepare(content, reception(), hostname="relay.test", groups=GROUPS, max_received=50)
    assert isinstance(result, Prepared)
    assert (result.binding_group, result.binding) == ("marketing", "m1")
    assert result.content.startswith(b"Received: from client.example ([192.0.2.1])\r\n")
    assert result.content.endswith(
        b"Subject: s\r\nMessage-ID: <0123abcd@relay.test>\r\n\r\nbody\r\n"
    )
    assert b"X-Binding" not in result.content


def test_prepare_keeps_message_id_and_uses_listener_group() -> None:
    content = b"message-id: <x@y>\r\n\r\nbody\r\n"
    result = prepare(
        content,
        reception(listener_group="marketing"),
        hostname="relay.test",
        groups=GROUPS,
        max_received=50,
    )
    assert isinstance(result, Prepared)
    assert result.binding_group == "marketing"
    assert result.content.count(b"essage-") == 1


def test_prepare_refuses_loops_and_unknown_groups() -> None:
    hop = b"Received: from a by b; Tue, 1 Jul 2025 12:00:00 +0000\r\n"
    kwargs = {"hostname": "relay.test", "groups": GROUPS, "max_received": 50}
    assert prepare(hop * 51 + b"\r\nb\r\n", reception(), **kwargs) == replies.MAIL_LOOP  # type: ignore[arg-type]
    assert isinstance(prepare(hop * 50 + b"\r\nb\r\n", reception(), **kwargs), Prepared)  # type: ignore[arg-type]
    refusal = prepare(b"X-Binding-Group: nope\r\n\r\nb\r\n", reception(), **kwargs)  # type: ignore[arg-type]
    assert refusal == replies.unknown_group("nope")


def test_prepare_reads_and_strips_tenant_and_campaign() -> None:
    content = b"X-Tenant: acme\r\nSubject: s\r\nx-campaign:  spring sale \r\n\r\nbody\r\n"
    kwargs = {"hostname": "relay.test", "groups": GROUPS, "max_received": 50}
    result = prepare(content, reception(listener_tenant="house"), **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Prepared)
    assert (result.tenant, result.campaign) == ("acme", "spring sale")
    assert b"tenant" not in result.content.lower() and b"campaign" not in result.content.lower()
    # without the headers (the fast path): the listener's defaults, content untouched
    plain = prepare(b"Subject: s\r\n\r\nbody\r\n", reception(listener_tenant="house"), **kwargs)  # type: ignore[arg-type]
    assert isinstance(plain, Prepared) and (plain.tenant, plain.campaign) == ("house", None)
    # a field merely starting with the name is not it, and is kept
    other = prepare(b"X-Tenant-Id: 7\r\n\r\nb\r\n", reception(), **kwargs)  # type: ignore[arg-type]
    assert isinstance(other, Prepared) and other.tenant is None
    assert b"X-Tenant-Id: 7" in other.content
    bad = prepare(b"X-Tenant:\r\n\r\nb\r\n", reception(), **kwargs)  # type: ignore[arg-type]
    assert bad == replies.bad_label("X-Tenant")


def test_prepare_reads_and_strips_the_priority_class() -> None:
    kwargs = {"hostname": "relay.test", "groups": GROUPS, "max_received": 50}
    content = b"X-Priority-Class: Transactional\r\nSubject: s\r\n\r\nbody\r\n"
    result = prepare(content, reception(), **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Prepared) and result.priority == "transactional"
    assert b"priority-class" not in result.content.lower()
    plain = prepare(b"Subject: s\r\n\r\nbody\r\n", reception(), **kwargs)  # type: ignore[arg-type]
    assert isinstance(plain, Prepared) and plain.priority is None
    bad = prepare(b"X-Priority-Class: urgent\r\n\r\nb\r\n", reception(), **kwargs)  # type: ignore[arg-type]
    assert bad == replies.bad_priority("X-Priority-Class")
