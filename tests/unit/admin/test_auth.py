"""Token files and the scope decision (pure)."""

from __future__ import annotations

import pytest

from relay.admin.auth import Refusal, TokenFileError, decide, find_token, parse_tokens

SECRET = "0123456789abcdef"
TOKENS = parse_tokens(
    f"# comment\n\nreader:read:r{SECRET}\nfeeder:inject:i{SECRET}\nboss:admin:a{SECRET}:x\n",
    "tokens",
)


def test_parse_keeps_colons_in_the_token() -> None:
    assert [(t.name, t.scope) for t in TOKENS] == [
        ("reader", "read"),
        ("feeder", "inject"),
        ("boss", "admin"),
    ]
    assert TOKENS[2].secret == f"a{SECRET}:x".encode()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("x", 1, "expected NAME:SCOPE:TOKEN"),
        (f"a:read:{SECRET}\na:read:{SECRET}1", 2, "token name 'a' appears twice"),
        (f"a:write:{SECRET}", 1, "scope 'write' is not one of read, inject, admin"),
        ("", 0, "no tokens in the file"),
    ],
)
def test_parse_refuses(text: str, line: int, message: str) -> None:
    with pytest.raises(TokenFileError) as caught:
        parse_tokens(text, "f")
    assert (caught.value.line, caught.value.message) == (line, message)


def test_find_token() -> None:
    assert find_token(TOKENS, f"Bearer i{SECRET}") is TOKENS[1]
    assert find_token(TOKENS, f"bearer  i{SECRET} ") is TOKENS[1]
    assert find_token(TOKENS, f"Basic i{SECRET}") is None
    assert find_token(TOKENS, f"Bearer i{SECRET}x") is None
    assert find_token(TOKENS, "Bearer ") is None
    assert find_token(TOKENS, None) is None


def test_decide() -> None:
    assert decide(TOKENS, None, "open") is None
    assert decide(TOKENS, None, "read") == Refusal(401, "missing Authorization: Bearer token")
    assert decide(TOKENS, f"Bearer r{SECRET}", "read") is TOKENS[0]
    refused = decide(TOKENS, f"Bearer r{SECRET}", "inject")
    assert isinstance(refused, Refusal) and refused.status == 403
    assert decide(TOKENS, f"Bearer a{SECRET}:x", "inject") is TOKENS[2]  # admin has all
    refused = decide(TOKENS, f"Bearer i{SECRET}", "read")
    assert isinstance(refused, Refusal) and refused.status == 403
    # Without a token file: reads only.
    assert decide(None, None, "read") is None
    refused = decide(None, f"Bearer a{SECRET}:x", "admin")
    assert isinstance(refused, Refusal) and refused.status == 401
