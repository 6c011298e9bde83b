"""Read configuration text into a syntax tree, following `include` directives.

Grammar (Momentum ecelerity.conf):
    body       := statement*
    statement  := include | assignment | stanza
    include    := ("include" | "readonly_include") scalar
    assignment := WORD "=" value
    stanza     := WORD [scalar] "{" body "}"
    value      := scalar | "(" scalar* ")"
    scalar     := WORD | STRING

Every syntax error is collected; after one, parsing resumes on the next line.
"""

from __future__ import annotations

import os
from pathlib import Path

from relay.config.errors import ConfigError, Location, Problem, sorted_problems
from relay.config.lexer import Kind, Token, tokenize
from relay.config.tree import Assignment, Document, ListValue, Node, Scalar, Stanza, Value

INCLUDE_KEYWORDS = frozenset({"include", "readonly_include"})


class _SyntaxError(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _Parser:
    def __init__(
        self, tokens: list[Token], path: Path | None, reader: _Reader, cut_short: bool = False
    ) -> None:
        self.tokens = tokens
        # The lexer stopped early (a comment never closed): the missing '}' may be in it.
        self.cut_short = cut_short
        self.pos = 0
        self.path = path
        self.reader = reader
        self.open: list[tuple[str, Location]] = []  # stanzas being read: name, where opened
        self.unclosed_reported = False

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind is not Kind.EOF:
            self.pos += 1
        return token

    def expect(self, kind: Kind, what: str) -> Token:
        token = self.peek()
        if token.kind is not kind:
            raise _SyntaxError(Problem(token.location, f"expected {what}, found {describe(token)}"))
        return self.take()

    def recover(self, after: Location) -> None:
        """Skip to the first token on a later line (or a closing brace)."""
        while True:
            token = self.peek()
            if token.kind in (Kind.EOF, Kind.RBRACE) or token.location.line > after.line:
                return
            self.take()

    def body(self, closing: Token | None) -> tuple[Node, ...]:
        nodes: list[Node] = []
        while True:
            token = self.peek()
            if token.kind is Kind.EOF:
                if closing is not None and not (self.unclosed_reported or self.cut_short):
                    self.unclosed(token.location)
                return tuple(nodes)
            if token.kind is Kind.RBRACE:
                if closing is not None:
                    self.take()
                    return tuple(nodes)
                self.take()
                hint = "remove it"
                if self.reader.including():
                    hint += "; in an included file, '}' closes only a stanza opened in that file"
                self.reader.problems.append(
                    Problem(token.location, "'}' without a matching '{'", hint=hint)
                )
                continue
            try:
                nodes.extend(self.statement())
            except _SyntaxError as err:
                self.reader.problems.append(err.problem)
                self.recover(err.problem.location)

    def unclosed(self, end: Location) -> None:
        """The file ends inside stanzas: one error, for the innermost, at the end of file."""
        self.unclosed_reported = True
        name, opened = self.open[-1]
        hint = "add the missing '}' at the end of its body"
        if self.reader.including():
            hint += ", in this file: a stanza cannot go on past the end of an included file"
        for outer, where in reversed(self.open[:-1]):
            hint += f"; {outer} opened on line {where.line} needs one too"
        self.reader.problems.append(
            Problem(end, f"stanza opened on line {opened.line} is never closed", name, hint)
        )

    def statement(self) -> list[Node]:
        head = self.expect(Kind.WORD, "an option name, a stanza or 'include'")
        nxt = self.peek()
        if head.text.lower() in INCLUDE_KEYWORDS and nxt.kind in (Kind.STRING, Kind.WORD):
            target = self.take()
            return self.reader.include(target.text, self.path, target.location)
        if nxt.kind is Kind.EQUALS:
            self.take()
            return [Assignment(head.text, self.value(), head.location)]
        label: Scalar | None = None
        if nxt.kind in (Kind.WORD, Kind.STRING):
            label = scalar(self.take())
            nxt = self.peek()
        if nxt.kind is Kind.LBRACE:
            opening = self.take()
            name = head.text if label is None else f'{head.text} "{label.text}"'
            self.open.append((name, head.location))
            try:
                return [Stanza(head.text, label, self.body(opening), head.location)]
            finally:
                self.open.pop()
        expected = "'{'" if label is not None else "'=' or '{'"
        raise _SyntaxError(
            Problem(
                nxt.location,
                f"expected {expected} after {head.text!r}, found {describe(nxt)}",
                option=head.text,
            )
        )

    def value(self) -> Value:
        token = self.peek()
        if token.kind in (Kind.WORD, Kind.STRING):
            return scalar(self.take())
        if token.kind is Kind.LPAREN:
            self.take()
            items: list[Scalar] = []
            while self.peek().kind in (Kind.WORD, Kind.STRING):
                items.append(scalar(self.take()))
            close = self.peek()
            if close.kind is not Kind.RPAREN:
                raise _SyntaxError(
                    Problem(
                        token.location,
                        f"list is not closed: expected ')' but found {describe(close)}",
                        hint="lists hold words and strings only",
                    )
                )
            self.take()
            return ListValue(tuple(items), token.location)
        raise _SyntaxError(Problem(token.location, f"expected a value, found {describe(token)}"))


def scalar(token: Token) -> Scalar:
    return Scalar(token.text, token.kind is Kind.STRING, token.location)


def describe(token: Token) -> str:
    if token.kind is Kind.WORD:
        return f"word {token.text!r}"
    if token.kind is Kind.STRING:
        return f"string {token.text!r}"
    return str(token.kind.value)


class _Reader:
    """Reads files and the files they include, detecting include cycles."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.stack: list[Path] = []
        self.files: list[Path] = []

    def including(self) -> bool:
        """True while reading an included file (not the top one)."""
        return len(self.stack) > 1

    def read_file(self, path: Path, where: Location | None) -> list[Node]:
        resolved = path.resolve()
        if resolved in self.stack:
            chain = " -> ".join(str(p) for p in [*self.stack, resolved])
            loc = where or Location(str(path), 0, 0)
            self.problems.append(
                Problem(loc, f"include cycle: {chain}", hint="remove one of these includes")
            )
            return []
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            loc = where or Location(str(path), 0, 0)
            self.problems.append(Problem(loc, f"cannot read {str(path)!r}: {err.strerror or err}"))
            return []
        except UnicodeDecodeError as err:
            self.problems.append(
                Problem(Location(str(path), 1, 1), f"file is not UTF-8 text: {err.reason}")
            )
            return []
        self.files.append(resolved)
        self.stack.append(resolved)
        try:
            return list(self.parse(text, str(path), path))
        finally:
            self.stack.pop()

    def parse(self, text: str, name: str, path: Path | None) -> tuple[Node, ...]:
        tokens, problems = tokenize(text, name)
        self.problems.extend(problems)
        cut_short = any(p.location == tokens[-1].location for p in problems)
        return _Parser(tokens, path, self, cut_short).body(None)

    def include(self, target: str, including: Path | None, where: Location) -> list[Node]:
        base = including.parent if including is not None else Path.cwd()
        path = Path(target) if os.path.isabs(target) else base / target
        if path.is_dir():
            nodes: list[Node] = []
            entries = sorted(
                p for p in path.iterdir() if p.suffix == ".conf" and not p.name.startswith(".")
            )
            for entry in entries:
                if entry.is_file():
                    nodes.extend(self.read_file(entry, where))
            return nodes
        if not path.exists():
            self.problems.append(
                Problem(
                    where,
                    f"included file {str(path)!r} does not exist",
                    option="include",
                    hint="fix the path; relative paths start from the including file's folder",
                )
            )
            return []
        return self.read_file(path, where)


def parse_text(text: str, name: str = "<text>", path: Path | None = None) -> Document:
    """Parse configuration text; raise ConfigError listing every syntax error."""
    reader = _Reader()
    body = reader.parse(text, name, path)
    if reader.problems:
        raise ConfigError(sorted_problems(reader.problems))
    return Document(body)


def parse_file_partial(path: str | Path) -> tuple[Document, list[Path], list[Problem]]:
    """Parse a file and its includes as far as possible: tree, files read, syntax problems."""
    reader = _Reader()
    body = reader.read_file(Path(path), None)
    return Document(tuple(body)), reader.files, reader.problems


def parse_file(path: str | Path) -> tuple[Document, list[Path]]:
    """Parse a file and its includes; raise ConfigError listing every syntax error."""
    document, files, problems = parse_file_partial(path)
    if problems:
        raise ConfigError(sorted_problems(problems))
    return document, files
