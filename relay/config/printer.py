"""Write a syntax tree back as configuration text that parses to the same tree."""

from __future__ import annotations

from relay.config.tree import Assignment, Document, ListValue, Node, Scalar, Value

INDENT = "  "


def quote(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\u201c", "\\\u201c")  # typographic quotes close a string too
        .replace("\u201d", "\\\u201d")
    )
    return f'"{escaped}"'


def format_scalar(value: Scalar) -> str:
    return quote(value.text) if value.quoted else value.text


def format_value(value: Value) -> str:
    if isinstance(value, ListValue):
        inner = " ".join(format_scalar(item) for item in value.items)
        return f"( {inner} )" if inner else "( )"
    return format_scalar(value)


def _lines(nodes: tuple[Node, ...], depth: int) -> list[str]:
    out: list[str] = []
    pad = INDENT * depth
    for node in nodes:
        if isinstance(node, Assignment):
            out.append(f"{pad}{node.name} = {format_value(node.value)}")
        else:
            head = node.kind if node.label is None else f"{node.kind} {format_scalar(node.label)}"
            out.append(f"{pad}{head} {{")
            out.extend(_lines(node.body, depth + 1))
            out.append(f"{pad}}}")
    return out


def format_document(document: Document) -> str:
    lines = _lines(document.body, 0)
    return "\n".join(lines) + ("\n" if lines else "")
