"""Momentum's response_transcode rewrite of a peer's reply. Pure."""

from __future__ import annotations

import re

from relay.outcome import Reply

_DOLLAR = re.compile(r"\$(\d+)")


def transcode(reply: Reply, pattern: str | None, replace: str | None) -> Reply:
    """Momentum's response_transcode: a 4xx/5xx reply (as "code text") that matches
    `pattern` is replaced by `replace`, with $0, $1... expanded from the match. The result
    is re-parsed, so a rewritten code changes the classification."""
    if pattern is None or replace is None or reply.code is None or reply.code < 400:
        return reply
    whole = f"{reply.code} {reply.text}"
    match = re.search(pattern, whole)
    if match is None:
        return reply

    groups: tuple[str | None, ...] = (match[0], *match.groups())

    def expand(ref: re.Match[str]) -> str:
        index = int(ref[1])
        return (groups[index] or "") if index < len(groups) else ref[0]

    rewritten = _DOLLAR.sub(expand, replace)
    parsed = Reply.parse_line(rewritten, local=reply.local)
    if parsed is None:
        # The replacement has no code of its own: keep the original code.
        return Reply.parse(reply.code, rewritten.strip(), local=reply.local)
    return parsed
