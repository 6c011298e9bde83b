"""One test per error kind: each names the file, line and option, and says what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from relay.config import ConfigError, Problem, load

Write = Callable[..., Path]


def problems(write: Write, text: str, name: str = "relay.conf") -> list[Problem]:
    path = write(name, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value.problems


def one(write: Write, text: str) -> Problem:
    found = problems(write, text)
    assert len(found) == 1, found
    return found[0]


def test_unknown_option_suggests_nearest(write: Write) -> None:
    p = one(write, 'binding "b" {\n  max_outbound_conections = 3\n}\n')
    assert p.location.line == 2
    assert p.location.file.endswith("relay.conf")
    assert p.option == "max_outbound_conections"
    assert "unknown option" in p.message
    assert p.hint is not None and "max_outbound_connections" in p.hint


def test_option_in_wrong_scope_lists_valid_scopes(write: Write) -> None:
    p = one(write, 'domain "x.com" {\n  bind_address = 10.0.0.1\n}\n')
    assert (p.location.line, p.option) == (2, "bind_address")
    assert "not valid in the domain scope" in p.message
    assert p.hint == "valid in: binding, binding_group, global"


def test_bad_value_lists_accepted_forms(write: Write) -> None:
    p = one(write, "\nretry_interval = soon\n")
    assert (p.location.line, p.option) == (2, "retry_interval")
    assert "'soon'" in p.message and "4 hours" in p.message


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        ("tls = maybe", "no | ifavailable | required"),
        ("never_retry = perhaps", "true/false"),
        ('outbound_throttle_messages = "ten/1"', "N/seconds"),
        ("bind_address = 300.1.1.1", "IPv4 or IPv6"),
        ("adaptive_max_outbound_connections = ( 10 2 )", "above high bound"),
        ("adaptive_max_outbound_connections = 5", "( low high )"),
        ('gateway = "mx.example.com:99999"', "port"),
        ("max_outbound_connections = many", "integer"),
        ("esmtp_listener { inbound_idle_timeout = 0 }", "more than 0 seconds"),
        ('esmtp_listener { inbound_data_timeout = "0s" }', "more than 0 seconds"),
        ('hostname = ""', "not a host name"),
        ('hostname = "relay one"', "not a host name"),
    ],
)
def test_bad_values(write: Write, line: str, expect: str) -> None:
    p = one(write, line + "\n")
    assert p.location.line == 1
    assert expect in p.message


def test_listener_certificate_without_key_names_the_certificate(write: Write) -> None:
    p = one(write, 'esmtp_listener {\n  tls_certificate = "/etc/relay/cert.pem"\n}\n')
    assert (p.location.line, p.option) == (2, "tls_certificate")
    assert "needs tls_key" in p.message


def test_listener_key_without_certificate_names_the_key(write: Write) -> None:
    p = one(write, 'tls_key = "/etc/relay/key.pem"\n')
    assert (p.location.line, p.option) == (1, "tls_key")
    assert "needs tls_certificate" in p.message


def test_duplicate_scalar_in_one_stanza(write: Write) -> None:
    p = one(write, 'binding "b" {\n  retry_interval = 1\n  retry_interval = 2\n}\n')
    assert (p.location.line, p.option) == (3, "retry_interval")
    assert "set twice" in p.message and "line 2" in p.message


def test_unterminated_string(write: Write) -> None:
    p = one(write, 'ehlo_hostname = "abc\n')
    assert (p.location.line, p.location.column) == (1, 17)
    assert "never closed" in p.message


def test_unterminated_stanza(write: Write) -> None:
    # Reported where the '}' is missing (the end of file), naming the stanza and its line.
    p = one(write, 'binding_group "g" {\n  binding "b" {\n  }\n')
    assert p.location.line == 4
    assert "never closed" in p.message and "'}'" in (p.hint or "")


def test_unmatched_closing_brace(write: Write) -> None:
    p = one(write, "retry_interval = 5\n}\n")
    assert p.location.line == 2
    assert "without a matching" in p.message


def test_missing_include(write: Write) -> None:
    p = one(write, '\ninclude "nowhere.conf"\n')
    assert (p.location.line, p.option) == (2, "include")
    assert "does not exist" in p.message


def test_include_cycle(write: Write) -> None:
    write("b.conf", 'include "relay.conf"\n')
    p = one(write, 'include "b.conf"\n')
    assert "include cycle" in p.message
    assert p.location.file.endswith("b.conf")


def test_pre_3_0_binding_group_inside_binding(write: Write) -> None:
    p = one(
        write,
        'binding "example" {\n  binding_group = "group1"\n  bind_address = "10.10.10.10"\n}\n',
    )
    assert (p.location.line, p.option) == (2, "binding_group")
    assert "pre-3.0" in p.message
    assert p.hint is not None
    assert 'binding_group "group1" { binding "example"' in p.hint


def test_binding_in_two_groups(write: Write) -> None:
    p = one(write, 'binding_group "a" { binding "b" {} }\nbinding_group "c" { binding "b" {} }\n')
    assert p.location.line == 2
    assert 'already in binding_group "a"' in p.message


def test_names_without_spaces_or_colons(write: Write) -> None:
    p = one(write, 'binding_group "my group" {}\n')
    assert "spaces or colons" in p.message


def test_stanza_in_wrong_scope(write: Write) -> None:
    p = one(write, 'domain "x.com" {\n  binding "b" {}\n}\n')
    assert (p.location.line, p.option) == (2, "binding")
    assert "cannot appear in the domain scope" in p.message


def test_unknown_stanza(write: Write) -> None:
    p = one(write, 'bindin "b" {\n}\n')
    assert "unknown stanza" in p.message and "'binding'" in (p.hint or "")


def test_every_error_is_reported_not_just_the_first(write: Write) -> None:
    found = problems(
        write,
        'retry_interval = soon\nbogus_option = 1\nbinding "b" {\n  tls = maybe\n}\n'
        'ehlo_hostname = "open\n',
    )
    assert [p.location.line for p in found] == [1, 2, 4, 6]


def test_errors_in_included_files_name_that_file(write: Write) -> None:
    write("conf.d/10-bindings.conf", 'binding "b" {\n  max_retry_interval = never\n}\n')
    found = problems(write, 'include "conf.d"\n')
    assert found[0].location.file.endswith("10-bindings.conf")
    assert found[0].location.line == 2
    assert str(found[0]).startswith(found[0].location.file + ":2:")


def message(write: Write, text: str) -> tuple[Path, str]:
    """(the file, its one problem as `config check` prints it)."""
    path = write("relay.conf", text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert len(info.value.problems) == 1, info.value.problems
    return path, str(info.value.problems[0])


# --- unclosed stanzas: at the end of file, naming the innermost open stanza ------------------


def test_unclosed_stanza_names_it_and_the_line_it_opened_on(write: Write) -> None:
    path, text = message(
        write,
        'binding_group "marketing" {\n  binding "mkt-1" {\n    bind_address = 127.0.0.2\n  }\n',
    )
    assert text == (
        f'{path}:5:1: binding_group "marketing": stanza opened on line 1 is never closed '
        "(add the missing '}' at the end of its body)"
    )


def test_unclosed_nested_stanzas_name_the_innermost(write: Write) -> None:
    path, text = message(
        write,
        'binding_group "marketing" {\n  binding "mkt-1" {\n    bind_address = 127.0.0.2\n'
        '    domain "example.com" { max_outbound_connections = 3 }',
    )
    assert text == (
        f'{path}:4:58: binding "mkt-1": stanza opened on line 2 is never closed '
        "(add the missing '}' at the end of its body; "
        'binding_group "marketing" opened on line 1 needs one too)'
    )


def test_unclosed_unnamed_stanza(write: Write) -> None:
    path, text = message(write, 'esmtp_listener {\n  listen ":2525" { }\n')
    assert text == (
        f"{path}:3:1: esmtp_listener: stanza opened on line 1 is never closed "
        "(add the missing '}' at the end of its body)"
    )


def test_a_comment_never_closed_is_one_error_not_an_unclosed_stanza_too(write: Write) -> None:
    path, text = message(write, 'binding "b" {\n  /* note\n  bind_address = 127.0.0.2\n}\n')
    assert text == f"{path}:2:3: comment is never closed (add '*/' to end it)"


def test_stanza_left_open_at_the_end_of_an_included_file(write: Write) -> None:
    inc = write("conf.d/10-marketing.conf", 'binding_group "marketing" {\n  binding "mkt-1" { }\n')
    path = write("relay.conf", 'include "conf.d"\nretry_interval = 5\n')
    found = problems(write, path.read_text())
    assert [str(p) for p in found] == [
        f'{inc}:3:1: binding_group "marketing": stanza opened on line 1 is never closed '
        "(add the missing '}' at the end of its body, in this file: "
        "a stanza cannot go on past the end of an included file)"
    ]


def test_closing_brace_in_an_included_file_for_a_stanza_of_the_including_one(
    write: Write,
) -> None:
    inc = write("opts.conf", "max_outbound_connections = 3\n}\n")
    path = write("relay.conf", 'binding_group "g" {\n  include "opts.conf"\n')
    found = problems(write, path.read_text())
    assert [str(p) for p in found] == [
        f"{inc}:2:1: '}}' without a matching '{{' (remove it; in an included file, "
        "'}' closes only a stanza opened in that file)",
        f'{path}:3:1: binding_group "g": stanza opened on line 1 is never closed '
        "(add the missing '}' at the end of its body)",
    ]


# --- stanzas nested where they make no sense ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            'binding_group "g" {\n  binding "b0" {\n    binding "b1" { }\n  }\n}\n',
            '3:5: binding: binding "b1" inside binding "b0": bindings do not nest '
            '(declare it inside binding_group "g", beside "b0")',
        ),
        (
            'binding "b0" {\n  binding "b1" { bind_address = 127.0.0.3 }\n}\n',
            '2:3: binding: binding "b1" inside binding "b0": bindings do not nest '
            '(declare it at the top level, beside "b0")',
        ),
    ],
)
def test_binding_inside_binding(write: Write, text: str, expect: str) -> None:
    path, got = message(write, text)
    assert got == f"{path}:{expect}"


def test_binding_group_inside_binding_group(write: Write) -> None:
    path, got = message(write, 'binding_group "a" {\n  binding_group "b" { }\n}\n')
    assert got == (
        f'{path}:2:3: binding_group: binding_group "b" inside binding_group "a": '
        'binding groups do not nest (declare it at the top level, beside "a")'
    )


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            'binding "b" {\n  binding_group "g" { }\n}\n',
            '2:3: binding_group: binding_group "g" inside binding "b": a binding_group holds '
            'bindings, not the other way round (write binding_group "g" { binding "b" { ... } } '
            "at the top level)",
        ),
        (
            'binding_group "a" {\n  binding "b" {\n    binding_group "g" { }\n  }\n}\n',
            '3:5: binding_group: binding_group "g" inside binding "b": a binding_group holds '
            'bindings, not the other way round (binding "b" is already in binding_group "a", '
            "and a binding belongs to one group)",
        ),
    ],
)
def test_binding_group_stanza_inside_binding(write: Write, text: str, expect: str) -> None:
    path, got = message(write, text)
    assert got == f"{path}:{expect}"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            'binding "b" {\n  domain "x.com" {\n    domain "y.com" { }\n  }\n}\n',
            '3:5: domain: domain "y.com" inside domain "x.com": domains do not nest '
            '(declare it inside binding "b", beside "x.com")',
        ),
        (
            'host "mx.x.com" {\n  host "mx.y.com" { }\n}\n',
            '2:3: host: host "mx.y.com" inside host "mx.x.com": hosts do not nest '
            '(declare it at the top level, beside "mx.x.com")',
        ),
        (
            'binding_group "g" {\n  domain "x.com" {\n    host "mx.x.com" { }\n  }\n}\n',
            '3:5: host: host "mx.x.com" inside domain "x.com": there is no domain::host scope: '
            'host options apply whatever the domain (declare it inside binding_group "g", '
            'beside "x.com")',
        ),
        (
            'host "mx.x.com" {\n  domain "x.com" { }\n}\n',
            '2:3: domain: domain "x.com" inside host "mx.x.com": a host stanza holds options '
            'only, and domain is the wider scope (declare it at the top level, beside "mx.x.com")',
        ),
    ],
    ids=["domain-in-domain", "host-in-host", "host-in-domain", "domain-in-host"],
)
def test_domain_and_host_nesting(write: Write, text: str, expect: str) -> None:
    path, got = message(write, text)
    assert got == f"{path}:{expect}"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            'listen "127.0.0.1:2525" { }\n',
            '1:1: listen: listen "127.0.0.1:2525" at the top level: listen stanzas belong to '
            'the esmtp_listener (write esmtp_listener { listen "127.0.0.1:2525" { ... } } '
            "at the top level)",
        ),
        (
            'binding "b" {\n  peer "10.0.0.0/8" { }\n}\n',
            '2:3: peer: peer "10.0.0.0/8" inside binding "b": peers belong to the '
            'esmtp_listener (write esmtp_listener { peer "10.0.0.0/8" { ... } } at the top level)',
        ),
        (
            'esmtp_listener {\n  listen ":25" {\n    listen ":26" { }\n  }\n}\n',
            '3:5: listen: listen ":26" inside listen ":25": listen stanzas do not nest '
            '(declare it inside esmtp_listener, beside ":25")',
        ),
        (
            'esmtp_listener {\n  listen ":25" {\n    peer "10.0.0.0/8" {\n'
            '      peer "10.1.0.0/16" { }\n    }\n  }\n}\n',
            '4:7: peer: peer "10.1.0.0/16" inside peer "10.0.0.0/8": peers do not nest '
            '(declare it inside listen ":25", beside "10.0.0.0/8")',
        ),
        (
            'binding_group "g" {\n  esmtp_listener { }\n}\n',
            '2:3: esmtp_listener: esmtp_listener inside binding_group "g": the esmtp_listener '
            "is a top-level stanza (move it to the top level)",
        ),
        (
            "esmtp_listener {\n  esmtp_listener { }\n}\n",
            "2:3: esmtp_listener: esmtp_listener inside esmtp_listener: there is one "
            "esmtp_listener and it does not nest (remove the inner esmtp_listener { } and keep "
            "what it holds)",
        ),
    ],
    ids=[
        "listen-at-top",
        "peer-in-binding",
        "listen-in-listen",
        "peer-in-peer",
        "listener-in-group",
        "listener-in-listener",
    ],
)
def test_listener_nesting(write: Write, text: str, expect: str) -> None:
    path, got = message(write, text)
    assert got == f"{path}:{expect}"


def test_other_misplaced_stanzas_name_both_and_list_valid_scopes(write: Write) -> None:
    path, got = message(write, 'host "mx.x.com" {\n  adaptive_sweep_rule "r" { }\n}\n')
    assert got == (
        f'{path}:2:3: adaptive_sweep_rule: adaptive_sweep_rule "r" inside host "mx.x.com": '
        "an adaptive_sweep_rule stanza cannot appear in the host scope "
        "(it is valid in: binding, binding_group, domain, global)"
    )


def test_momentum_nestings_are_accepted(write: Write) -> None:
    load(
        write(
            "relay.conf",
            'domain "x.com" { adaptive_sweep_rule "s" { } }\nhost "mx.x.com" { }\n'
            'binding_group "g" {\n  domain "y.com" { }\n  host "mx.y.com" { }\n'
            '  binding "b" {\n    domain "z.com" { }\n    host "mx.z.com" { }\n  }\n}\n'
            'binding "t" { domain "/.*/" { } host "mx.t.com" { } }\n'
            'esmtp_listener { peer "10.0.0.0/8" { } listen ":25" { peer "::1" { } } }\n',
        )
    )


def test_syntax_and_nesting_errors_are_all_reported(write: Write) -> None:
    found = problems(
        write,
        'binding "b0" {\n  binding "b1" { }\n  tls = maybe\n}\nretry_interval = soon\n'
        'domain "x.com" {\n',
    )
    assert [(p.location.line, p.option) for p in found] == [
        (2, "binding"),
        (3, "tls"),
        (5, "retry_interval"),
        (7, 'domain "x.com"'),
    ]
