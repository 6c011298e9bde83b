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
    ],
)
def test_bad_values(write: Write, line: str, expect: str) -> None:
    p = one(write, line + "\n")
    assert p.location.line == 1
    assert expect in p.message


def test_duplicate_scalar_in_one_stanza(write: Write) -> None:
    p = one(write, 'binding "b" {\n  retry_interval = 1\n  retry_interval = 2\n}\n')
    assert (p.location.line, p.option) == (3, "retry_interval")
    assert "set twice" in p.message and "line 2" in p.message


def test_unterminated_string(write: Write) -> None:
    p = one(write, 'ehlo_hostname = "abc\n')
    assert (p.location.line, p.location.column) == (1, 17)
    assert "never closed" in p.message


def test_unterminated_stanza(write: Write) -> None:
    p = one(write, 'binding_group "g" {\n  binding "b" {\n  }\n')
    assert p.location.line == 1
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
