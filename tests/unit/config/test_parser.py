"""The lexer and parser: syntax forms, includes, and round trips through the printer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.config import ConfigError, load, resolve
from relay.config.lexer import is_bare_word
from relay.config.parser import parse_text
from relay.config.printer import format_document
from relay.config.tree import Assignment, Document, ListValue, Scalar, Stanza

Write = Callable[..., Path]


def test_syntax_forms() -> None:
    doc = parse_text(
        """
# comment
name = value   # trailing comment
/* a C comment
   over lines */ other = "a \\"quoted\\" string\\n"
list = ( a "b c" 3 )
esmtp_listener {
  listen "127.0.0.1:2525" { }
}
binding_group g { binding "b" { } }
"""
    )
    assert doc.body[0] == Assignment("name", Scalar("value"))
    assert doc.body[1] == Assignment("other", Scalar('a "quoted" string\n', quoted=True))
    assert doc.body[2] == Assignment(
        "list", ListValue((Scalar("a"), Scalar("b c", quoted=True), Scalar("3")))
    )
    listener = doc.body[3]
    assert isinstance(listener, Stanza) and listener.label is None
    assert listener.body == (Stanza("listen", Scalar("127.0.0.1:2525", True), ()),)
    group = doc.body[4]
    assert isinstance(group, Stanza) and group.label == Scalar("g")


def test_typographic_quotes_read_as_quotes() -> None:
    doc = parse_text('codes = ("bc:10\u201d "bc:20\u201d)\n')
    assert doc.body[0] == Assignment(
        "codes", ListValue((Scalar("bc:10", True), Scalar("bc:20", True)))
    )


def test_option_names_are_case_insensitive_names_are_not(write: Write) -> None:
    c = load(
        write("r.conf", 'Binding_Group "G1" { BINDING "B1" { Max_Outbound_Connections = 4 } }')
    )
    assert "G1" in c.groups and "g1" not in c.groups
    assert resolve(c, "MAX_OUTBOUND_CONNECTIONS", binding="B1").value == 4


def test_include_file_and_directory_sorted_relative(write: Write) -> None:
    write("conf.d/20-b.conf", 'binding_group "g" { binding "b2" { bind_address = 127.0.0.3 } }')
    write("conf.d/10-a.conf", 'binding_group "g" { binding "b1" { bind_address = 127.0.0.2 } }')
    write("conf.d/.hidden.conf", "this is not config")
    write("conf.d/notes.txt", "nor is this")
    write("sub/extra.conf", 'include "../conf.d"\n')
    c = load(write("relay.conf", 'include "sub/extra.conf"\nretry_interval = 7\n'))
    assert [b.name for b in c.group_members("g")] == ["b1", "b2"]
    assert len(c.files) == 4


def test_include_inside_a_stanza(write: Write) -> None:
    write("opts.conf", "max_outbound_connections = 3\n")
    c = load(write("relay.conf", 'binding_group "g" {\n  include "opts.conf"\n}\n'))
    assert resolve(c, "max_outbound_connections", group="g").value == 3


ROUND_TRIP = """
max_outbound_connections = 30
binding_group "group1" {
  max_outbound_connections = 5
  binding "example" {
    bind_address = 10.10.10.10
    domain "example.com" { retry_interval = "4 hours" }
  }
}
adaptive_sweep_rule "r" { codes = ( "bc:10" "bc:20" ) high_action = ( "suspend" "4 hours" ) }
weird = "back\\\\slash \\"quote\\" tab\\t"
"""


def test_print_then_parse_gives_the_same_tree() -> None:
    doc = parse_text(ROUND_TRIP)
    assert parse_text(format_document(doc)) == doc


# --- property tests ---------------------------------------------------------------------
BARE = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_characters="#\"'=(){}\u201c\u201d/", exclude_categories=("Z", "C")
    ),
    min_size=1,
    max_size=12,
).filter(is_bare_word)
QUOTED = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\n\r", exclude_categories=("Cs",)),
    max_size=20,
)
SCALARS = st.one_of(
    BARE.map(lambda t: Scalar(t, False)),
    QUOTED.map(lambda t: Scalar(t, True)),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4).map(lambda x: ListValue(tuple(x))))
NAMES = BARE.filter(lambda t: t.lower() not in ("include", "readonly_include"))


def nodes(depth: int) -> st.SearchStrategy[Assignment | Stanza]:
    assignment = st.builds(Assignment, NAMES, VALUES)
    if depth == 0:
        return assignment
    stanza = st.builds(
        Stanza,
        NAMES,
        st.none() | SCALARS,
        st.lists(nodes(depth - 1), max_size=4).map(tuple),
    )
    return st.one_of(assignment, stanza)


@settings(max_examples=300, deadline=None)
@given(st.lists(nodes(3), max_size=6).map(lambda x: Document(tuple(x))))
def test_property_printed_tree_parses_back_identical(doc: Document) -> None:
    assert parse_text(format_document(doc)) == doc


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_property_garbage_raises_only_config_error(text: str) -> None:
    try:
        doc = parse_text(text)
    except ConfigError as err:
        assert err.problems
        return
    assert parse_text(format_document(doc)) == doc


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='abc ={}()"#\n/*_1.', max_size=120))
def test_property_structured_garbage_raises_only_config_error(text: str) -> None:
    from relay.config import loads

    try:
        loads(text)
    except ConfigError as err:
        assert all(p.location.line >= 1 for p in err.problems)


@pytest.mark.parametrize("word", ["abc", "10.0.0.1", "127.0.0.1:2525", "a/b", "x-y_z"])
def test_bare_words(word: str) -> None:
    assert is_bare_word(word)


@pytest.mark.parametrize("word", ["a b", 'a"', "a=b", "{", "", "a/*b"])
def test_not_bare_words(word: str) -> None:
    assert not is_bare_word(word)


def test_typographic_quotes_inside_a_string_print_escaped_and_read_back() -> None:
    doc = Document((Assignment("note", Scalar("say \u201chi\u201d", True)),))
    text = format_document(doc)
    assert text == 'note = "say \\\u201chi\\\u201d"\n'
    assert parse_text(text) == doc
