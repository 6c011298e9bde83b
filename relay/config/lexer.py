"""Tokens of Momentum's ecelerity.conf syntax.

Words, "strings" (with \\ escapes; typographic quotes are read as plain double quotes, as
vendor docs often contain them), `= { } ( )`, `#` line comments and C-style block comments.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from relay.config.errors import Location, Problem


class Kind(enum.Enum):
    WORD = "word"
    STRING = "string"
    EQUALS = "'='"
    LBRACE = "'{'"
    RBRACE = "'}'"
    LPAREN = "'('"
    RPAREN = "')'"
    EOF = "end of file"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    location: Location


PUNCTUATION = {
    "=": Kind.EQUALS,
    "{": Kind.LBRACE,
    "}": Kind.RBRACE,
    "(": Kind.LPAREN,
    ")": Kind.RPAREN,
}
CURLY = "\u201c\u201d"
OPEN_QUOTES = {'"': '"' + CURLY, CURLY[0]: '"' + CURLY, CURLY[1]: '"' + CURLY, "'": "'"}
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "'": "'"}
ESCAPES.update((q, q) for q in CURLY)  # backslash + typographic quote: that quote, kept
# A bare word: anything up to whitespace, a quote, a comment or punctuation.
BARE_WORD = re.compile(r"[^\s#\"'=(){}\u201c\u201d]+")


def is_bare_word(text: str) -> bool:
    """True if `text` can be written without quotes and reads back as one word."""
    return bool(BARE_WORD.fullmatch(text)) and "/*" not in text


def tokenize(text: str, file: str) -> tuple[list[Token], list[Problem]]:
    tokens: list[Token] = []
    problems: list[Problem] = []
    pos = 0
    line = 1
    line_start = 0
    size = len(text)

    def here(at: int) -> Location:
        return Location(file, line, at - line_start + 1)

    while pos < size:
        ch = text[pos]
        if ch == "\n":
            line += 1
            pos += 1
            line_start = pos
        elif ch.isspace():
            pos += 1
        elif ch == "#":
            end = text.find("\n", pos)
            pos = size if end < 0 else end
        elif text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                problems.append(
                    Problem(here(pos), "comment is never closed", hint="add '*/' to end it")
                )
                break
            chunk = text[pos : end + 2]
            newlines = chunk.count("\n")
            if newlines:
                line += newlines
                line_start = pos + chunk.rfind("\n") + 1
            pos = end + 2
        elif ch in PUNCTUATION:
            tokens.append(Token(PUNCTUATION[ch], ch, here(pos)))
            pos += 1
        elif ch in OPEN_QUOTES:
            start = here(pos)
            closers = OPEN_QUOTES[ch]
            out: list[str] = []
            pos += 1
            closed = False
            while pos < size:
                c = text[pos]
                if c in closers:
                    closed = True
                    pos += 1
                    break
                if c == "\n":
                    break
                if c == "\\" and pos + 1 < size and text[pos + 1] != "\n":
                    nxt = text[pos + 1]
                    out.append(ESCAPES.get(nxt, "\\" + nxt))
                    pos += 2
                    continue
                out.append(c)
                pos += 1
            if not closed:
                problems.append(
                    Problem(
                        start,
                        "string is never closed on this line",
                        hint='close it with a double quote (")',
                    )
                )
            # An unclosed string still stands for a value, so one mistake is one error.
            tokens.append(Token(Kind.STRING, "".join(out), start))
        else:
            match = BARE_WORD.match(text, pos)
            assert match is not None  # every other character starts a bare word
            word = match.group()
            cut = word.find("/*")
            if cut > 0:
                word = word[:cut]
            tokens.append(Token(Kind.WORD, word, here(pos)))
            pos += len(word)
    tokens.append(Token(Kind.EOF, "", here(pos)))
    return tokens, problems
