"""Fuzz the configuration (relay/config parse + validate, relay/wiring compile) with
hypothesis: any text gives a Config or a ConfigError naming file, line and problem, never
another exception (fuzz_targets.config_text)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config.options import OPTIONS, STANZAS
from tests.reliability.fuzz_targets import config_text

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOAK = settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))

# Values of every shape an option may be given, and some no option takes.
VALUES = [
    "0",
    "1",
    "-1",
    "100",
    "99999999999999999999",
    "0.5",
    "1e400",
    "nan",
    "true",
    "no",
    '"4 hours"',
    '"30m"',
    '"1h30m"',
    '"100/1"',
    '"N/0"',
    '"0/0"',
    '""',
    '"\\x00"',
    '"127.0.0.1:2525"',
    '"[::1]:25"',
    '":0"',
    "127.0.0.2",
    '"::1"',
    '"10.0.0.0/8"',
    '"/(a|b/"',
    '"/^x$/"',
    "( 1 20 )",
    "( 20 1 )",
    "( )",
    '( "a" b 3 )',
    '"reject"',
    '"\\u00e9"',
    '"é"',
    '"/nonexistent/file"',
    '"%s"',
    "{",
    "}",
    "=",
    '"',
]
names = st.sampled_from(sorted(OPTIONS)) | st.text("abcxyz_", min_size=1, max_size=8)
stanza_names = st.sampled_from(sorted(STANZAS)) | st.sampled_from(["bogus", "include"])
labels = st.sampled_from(
    [
        '"a"',
        '"b"',
        '"example.com"',
        '"/x/"',
        '"127.0.0.1:2525"',
        '"10.0.0.0/8"',
        '"default"',
        "",
        '"a b"',
        '"x:y"',
    ]
)


def assignment() -> st.SearchStrategy[str]:
    return st.builds(lambda n, v: f"{n} = {v}\n", names, st.sampled_from(VALUES))


def stanza(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda kind, label, body: f"{kind} {label} {{\n{body}}}\n",
        stanza_names,
        labels,
        st.lists(inner, max_size=4).map("".join),
    )


statements = st.recursive(assignment(), stanza, max_leaves=10)
documents = st.lists(statements, max_size=8).map("".join)
noise = st.lists(
    st.sampled_from(['"', "{", "}", "(", ")", "=", "/*", "*/", "#", "\n", "\\", "\x00", " "]),
    max_size=6,
).map("".join)


@FAST
@given(documents)
def test_any_configuration_is_a_config_or_a_config_error(text: str) -> None:
    config_text(text)


@FAST
@given(documents, noise, st.integers(min_value=0))
def test_damaged_configuration_is_a_config_error(text: str, junk: str, at: int) -> None:
    cut = at % (len(text) + 1)
    config_text(text[:cut] + junk + text[cut:])


@FAST
@given(st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    config_text(text)


@pytest.mark.soak
@SOAK
@given(documents, noise, st.integers(min_value=0))
def test_damaged_configuration_is_a_config_error_soak(text: str, junk: str, at: int) -> None:
    cut = at % (len(text) + 1)
    config_text(text[:cut] + junk + text[cut:])


BASE = """
esmtp_listener {{
  {listener}
  listen "127.0.0.1:2525" {{ {listen} }}
}}
binding_group "g" {{
  {group}
  binding "b" {{ bind_address = 127.0.0.2 {binding} }}
  domain "example.com" {{ {domain} }}
}}
{top}
"""
setting = st.lists(assignment(), max_size=2).map("".join)


@FAST
@given(setting, setting, setting, setting, setting, setting)
def test_one_option_anywhere_in_a_working_configuration(
    listener: str, listen: str, group: str, binding: str, domain: str, top: str
) -> None:
    """Mostly valid: each value reaches the option's checks and then the wiring."""
    config_text(
        BASE.format(
            listener=listener,
            listen=listen,
            group=group,
            binding=binding,
            domain=domain,
            top=top,
        )
    )


SLOTS = ("listener", "listen", "group", "binding", "domain", "top")


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option_with_every_value_in_every_scope(name: str) -> None:
    """The sweep the random cases sample from, done in full (about 50,000 configurations in
    some 15 s): each option with each value of VALUES in each scope of BASE, one at a time.
    It found `inbound_data_timeout = 0`, `hostname = ""` and a listener certificate without
    its key each escaping as a ValueError from the settings instead of a ConfigError."""
    for value in VALUES:
        for slot in SLOTS:
            parts = dict.fromkeys(SLOTS, "")
            parts[slot] = f"{name} = {value}\n"
            config_text(BASE.format(**parts))
