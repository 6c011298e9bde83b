"""The syntax tree of a configuration: what the parser reads and the printer writes.

Locations are carried for error messages but are not part of equality, so a printed and
re-parsed tree compares equal to the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.config.errors import Location

NOWHERE = Location("<none>", 0, 0)


@dataclass(frozen=True, slots=True)
class Scalar:
    """A bare word or a quoted string (`quoted` tells which)."""

    text: str
    quoted: bool = False
    location: Location = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class ListValue:
    """`( a "b" 3 )`."""

    items: tuple[Scalar, ...]
    location: Location = field(default=NOWHERE, compare=False)


Value = Scalar | ListValue


@dataclass(frozen=True, slots=True)
class Assignment:
    """`name = value`."""

    name: str
    value: Value
    location: Location = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Stanza:
    """`kind [label] { body }`; `label` is None for an unnamed stanza."""

    kind: str
    label: Scalar | None
    body: tuple[Node, ...]
    location: Location = field(default=NOWHERE, compare=False)


Node = Assignment | Stanza


@dataclass(frozen=True, slots=True)
class Document:
    body: tuple[Node, ...]
