"""Who may call which admin endpoint: bearer tokens with scopes (pure; no sockets).

`admin_token_file` holds one token per line, `NAME:SCOPE:TOKEN`, scope `read`, `inject` or
`admin` (admin includes the others); blank lines and `#` comments are skipped. A request
carries `Authorization: Bearer TOKEN`. Tokens are compared in constant time, against every
token of the file (no early exit that would tell how many matched a prefix).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Scope = Literal["open", "read", "inject", "admin"]
SCOPES: tuple[str, ...] = ("read", "inject", "admin")
MIN_TOKEN = 16  # characters: a short token is a guessable one


class TokenFileError(ValueError):
    """The token file is unreadable or malformed; `line` is 0 for the whole file."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    scope: str
    secret: bytes

    def allows(self, needed: Scope) -> bool:
        return needed == "open" or self.scope == "admin" or self.scope == needed


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 401 or 403
    message: str


def parse_tokens(text: str, source: str) -> tuple[Token, ...]:
    tokens: list[Token] = []
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, scope, secret = ([*line.split(":", 2), "", ""])[:3]
        if not name or not secret:
            raise TokenFileError(source, number, "expected NAME:SCOPE:TOKEN")
        if scope not in SCOPES:
            raise TokenFileError(
                source, number, f"scope {scope!r} is not one of {', '.join(SCOPES)}"
            )
        if len(secret) < MIN_TOKEN:
            raise TokenFileError(
                source, number, f"token {name!r} is shorter than {MIN_TOKEN} characters"
            )
        if name in names:
            raise TokenFileError(source, number, f"token name {name!r} appears twice")
        names.add(name)
        tokens.append(Token(name, scope, secret.encode()))
    if not tokens:
        raise TokenFileError(source, 0, "no tokens in the file")
    return tuple(tokens)


def load_tokens(path: Path) -> tuple[Token, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TokenFileError(str(path), 0, f"cannot read the token file: {err}") from err
    return parse_tokens(text, str(path))


def find_token(tokens: Sequence[Token], authorization: str | None) -> Token | None:
    """The token a request's Authorization header names, or None."""
    if authorization is None:
        return None
    kind, _, presented = authorization.strip().partition(" ")
    if kind.lower() != "bearer" or not presented.strip():
        return None
    offered = presented.strip().encode()
    found: Token | None = None
    for token in tokens:  # every one compared: the time does not depend on which matched
        if hmac.compare_digest(token.secret, offered) and found is None:
            found = token
    return found


def decide(
    tokens: Sequence[Token] | None, authorization: str | None, needed: Scope
) -> Token | Refusal | None:
    """Whether a request for an endpoint of scope `needed` may go on: the token it
    presented (or None when it needs none), or the refusal.

    Without a token file (`tokens` None) only open and read endpoints answer."""
    if needed == "open":
        return None
    if tokens is None:
        if needed == "read":
            return None
        return Refusal(
            401,
            "this endpoint changes state and needs a token: set admin_token_file in the "
            "configuration",
        )
    token = find_token(tokens, authorization)
    if token is None:
        if authorization is None:
            return Refusal(401, "missing Authorization: Bearer token")
        return Refusal(401, "unknown or malformed bearer token")
    if not token.allows(needed):
        return Refusal(403, f"token {token.name!r} has scope {token.scope!r}, needs {needed!r}")
    return token
