"""`relay admin ...`: the CLI over the admin HTTP API (blocking is fine in a CLI).

The token (for every endpoint when the daemon has an admin_token_file) comes from
`--token-file FILE`, else $RELAY_ADMIN_TOKEN_FILE, else $RELAY_ADMIN_TOKEN (the token
itself). The file holds the bare token, or is an admin_token_file itself (its strongest
token is used). Output: a readable table, or the API's JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from relay.admin.auth import TokenFileError, parse_tokens

DEFAULT_URL = "http://127.0.0.1:2580"
TOKEN_ENV = "RELAY_ADMIN_TOKEN"
TOKEN_FILE_ENV = "RELAY_ADMIN_TOKEN_FILE"
STRENGTH = {"admin": 0, "inject": 1, "read": 2}


class ClientError(Exception):
    """Something the operator must fix before the command can work; one line."""


def read_token(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ClientError(f"cannot read the token file {path}: {err}") from None
    try:
        tokens = parse_tokens(text, path)
    except TokenFileError:
        token = text.strip()
        if not token or "\n" in token:
            raise ClientError(f"{path}: expected one token (or NAME:SCOPE:TOKEN lines)") from None
        return token
    return min(tokens, key=lambda t: STRENGTH[t.scope]).secret.decode()


def find_token(token_file: str | None) -> str | None:
    path = token_file or os.environ.get(TOKEN_FILE_ENV)
    if path:
        return read_token(path)
    return os.environ.get(TOKEN_ENV) or None


def request(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    cafile: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """The decoded answer; urllib.error.HTTPError for a 4xx/5xx."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(req, timeout=30, context=context) as reply:
        text = reply.read().decode()
    return text if path == "/metrics" else json.loads(text)


def add_commands(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"admin API (default {DEFAULT_URL})")
    parser.add_argument(
        "--token-file",
        help=f"file with the bearer token (default ${TOKEN_FILE_ENV}, else ${TOKEN_ENV})",
    )
    parser.add_argument("--cafile", help="CA certificate(s) to verify an https:// admin API")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    commands = parser.add_subparsers(title="admin commands", metavar="COMMAND", required=True)
    for name, text in (
        ("summary", "spool, queues, connections, event counts"),
        ("bindings", "binding groups and their bindings, with suspensions"),
        ("queues", "ready queues per binding x domain, scheduled mail per group x domain"),
        ("adaptive", "adaptive delivery's view of every binding x domain"),
        ("nodes", "the cluster's live nodes: versions, queue sizes, last seen"),
        ("tls", "today's TLS sessions per policy domain (MTA-STS, DANE; RFC 8460 results)"),
        ("providers", "provider stanzas and the provider of each domain seen so far"),
        ("holds", "tenant and campaign holds, with the mail waiting under each"),
        ("reload", "re-read the configuration (refused if invalid)"),
        ("metrics", "Prometheus metrics"),
        ("health", "is the spool writable, are the listeners up (/healthz)"),
        ("ready", "has recovery finished (/readyz)"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(admin=name)
    pair_commands = (
        ("suspend", "suspend a binding for a domain"),
        ("resume", "lift a suspension or blackhole of a binding for a domain"),
        ("reset", "forget adaptive's live values and overrides for a binding x domain"),
        ("override", "pin an adaptive-managed option for a binding x domain"),
    )
    for name, text in pair_commands:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("binding")
        sub.add_argument("domain")
        if name == "suspend":
            sub.add_argument("--duration", default="4 hours", help='e.g. 3600 or "4 hours"')
            sub.add_argument("--reason", default="operator")
        if name == "override":
            sub.add_argument("option", help="e.g. max_outbound_connections")
            sub.add_argument("value")
        sub.set_defaults(admin=name)
    for name, text in (
        ("hold", "hold a tenant's or campaign's mail to a domain or provider"),
        ("release", "lift a tenant or campaign hold"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("kind", choices=("tenant", "campaign"))
        sub.add_argument("subject", help="the tenant or campaign name")
        target = sub.add_mutually_exclusive_group(required=True)
        target.add_argument("--domain")
        target.add_argument("--provider")
        sub.add_argument("--binding", help="tenant x binding x domain only")
        if name == "hold":
            sub.add_argument("--duration", default="4 hours", help='e.g. 3600 or "4 hours"')
            sub.add_argument("--reason", default="operator")
        sub.set_defaults(admin=name)
    warmup = commands.add_parser(
        "warmup-age", help="set how many days into its warm-up schedule a binding is"
    )
    warmup.add_argument("binding")
    warmup.add_argument("age_days", type=int, help="0 = the first day of the schedule")
    warmup.set_defaults(admin="warmup-age")
    flush = commands.add_parser("flush", help="make delayed mail due now")
    flush.add_argument("domain", nargs="?")
    flush.set_defaults(admin="flush")
    message = commands.add_parser("message", help="a spooled message and its recipients")
    message.add_argument("id")
    message.set_defaults(admin="message")
    for name, text in (
        ("bounce", "fail matching queued mail, with DSNs"),
        ("delete", "drop matching queued mail (no delivery, no DSN)"),
        ("rebind", "move matching queued mail to another binding group"),
    ):
        sub = commands.add_parser(name, help=text, description=text + " (filters combine)")
        if name == "rebind":
            sub.add_argument("target", help="the binding group the mail moves to")
        sub.add_argument("--domain", help="recipient domain")
        sub.add_argument("--binding-group")
        sub.add_argument("--binding", help="the message's explicit binding")
        sub.add_argument("--sender")
        sub.add_argument("--tenant")
        sub.add_argument("--campaign")
        sub.add_argument("--older-than", help='received before: e.g. 3600 or "2 hours"')
        sub.set_defaults(admin=name)
    suppression = commands.add_parser(
        "suppression", help="the suppression list: list, add, remove entries"
    )
    actions = suppression.add_subparsers(metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="entries, by tenant then address")
    listing.add_argument("--tenant", help="only this tenant's entries")
    listing.add_argument("--address", help="only this address")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(admin="suppression-list")
    adding = actions.add_parser("add", help="suppress addresses (globally or for a tenant)")
    adding.add_argument("addresses", nargs="+", metavar="ADDRESS")
    adding.add_argument("--tenant", help="for this tenant's mail only (default: all mail)")
    adding.add_argument("--reason", default="")
    adding.set_defaults(admin="suppression-add")
    removing = actions.add_parser("remove", help="take an address off the list")
    removing.add_argument("address")
    removing.add_argument("--tenant", help="the tenant's entry (default: the global one)")
    removing.set_defaults(admin="suppression-remove")
    for name, text in (
        ("suspend-domain", "suspend every binding for a destination domain"),
        ("resume-domain", "lift every binding's suspension for a destination domain"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("domain")
        if name == "suspend-domain":
            sub.add_argument("--duration", default="4 hours", help='e.g. 3600 or "4 hours"')
            sub.add_argument("--reason", default="operator")
        sub.set_defaults(admin=name)


GETS = {
    "summary": "/api/v1/summary",
    "bindings": "/api/v1/bindings",
    "queues": "/api/v1/queues",
    "adaptive": "/api/v1/adaptive",
    "nodes": "/api/v1/nodes",
    "tls": "/api/v1/tls",
    "providers": "/api/v1/providers",
    "holds": "/api/v1/holds",
    "metrics": "/metrics",
    "health": "/healthz",
    "ready": "/readyz",
}


def call(args: argparse.Namespace, token: str | None) -> Any:
    name: str = args.admin
    url, cafile = args.url, getattr(args, "cafile", None)
    if name in GETS:
        return request(url, "GET", GETS[name], token=token, cafile=cafile)
    if name == "message":
        return request(url, "GET", f"/api/v1/messages/{quote(args.id)}", token=token, cafile=cafile)
    if name in ("bounce", "delete", "rebind"):
        body = {
            key: value
            for key, value in (
                ("domain", args.domain),
                ("binding_group", args.binding_group),
                ("binding", args.binding),
                ("sender", args.sender),
                ("tenant", args.tenant),
                ("campaign", args.campaign),
                ("older_than", args.older_than),
            )
            if value is not None
        }
        if name == "rebind":
            body["target"] = args.target
        return request(url, "POST", f"/api/v1/{name}", body, token=token, cafile=cafile)
    if name.startswith("suppression-"):
        return _suppression(args, token)
    if name in ("suspend-domain", "resume-domain"):
        body = {"domain": args.domain}
        if name == "suspend-domain":
            body.update(duration=args.duration, reason=args.reason)
        path = "/api/v1/" + name.partition("-")[0]
        return request(url, "POST", path, body, token=token, cafile=cafile)
    if name in ("hold", "release"):
        body = {
            key: value
            for key, value in (
                ("kind", args.kind),
                ("subject", args.subject),
                ("domain", args.domain),
                ("provider", args.provider),
                ("binding", args.binding),
            )
            if value is not None
        }
        if name == "hold":
            body.update(duration=args.duration, reason=args.reason)
        path = "/api/v1/holds" if name == "hold" else "/api/v1/holds/release"
        return request(url, "POST", path, body, token=token, cafile=cafile)
    if name == "warmup-age":
        body = {"binding": args.binding, "age_days": args.age_days}
        return request(url, "POST", "/api/v1/bindings/warmup", body, token=token, cafile=cafile)
    if name in ("reload", "flush"):
        body = {"domain": args.domain} if name == "flush" and args.domain else {}
        return request(url, "POST", f"/api/v1/{name}", body, token=token, cafile=cafile)
    body = {"binding": args.binding, "domain": args.domain}
    if name == "suspend":
        body.update(duration=args.duration, reason=args.reason)
    if name == "override":
        body.update(option=args.option, value=args.value)
    return request(url, "POST", f"/api/v1/adaptive/{name}", body, token=token, cafile=cafile)


def _suppression(args: argparse.Namespace, token: str | None) -> Any:
    url, cafile, name = args.url, getattr(args, "cafile", None), args.admin
    if name == "suppression-list":
        query = {"limit": args.limit, "offset": args.offset, "tenant": args.tenant}
        query["address"] = args.address
        text = urlencode({k: v for k, v in query.items() if v is not None})
        return request(url, "GET", f"/api/v1/suppressions?{text}", token=token, cafile=cafile)
    body: dict[str, Any] = {} if args.tenant is None else {"tenant": args.tenant}
    if name == "suppression-add":
        body.update(addresses=args.addresses, reason=args.reason)
        return request(url, "POST", "/api/v1/suppressions", body, token=token, cafile=cafile)
    body["address"] = args.address
    return request(url, "POST", "/api/v1/suppressions/remove", body, token=token, cafile=cafile)


def refusal(err: urllib.error.HTTPError, token: str | None) -> str:
    """One line for an error answer."""
    raw = err.read().decode(errors="replace").strip()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "error" in answer:
        text = str(answer["error"])
        if answer.get("field"):
            text += f" (field {answer['field']})"
        if answer.get("problems"):
            text += ": " + "; ".join(map(str, answer["problems"]))
    else:
        text = raw or str(err.reason)
    if err.code == 401 and token is None:
        text += f" (no token given: use --token-file or set ${TOKEN_FILE_ENV} / ${TOKEN_ENV})"
    return f"error: {err.code}: {text}"


def run(args: argparse.Namespace) -> int:
    try:
        token = find_token(getattr(args, "token_file", None))
        result = call(args, token)
    except ClientError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except urllib.error.HTTPError as err:
        print(refusal(err, token), file=sys.stderr)
        return 1
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, ConnectionRefusedError):
            print(
                f"error: no relay daemon answers at {args.url} (is it running, with "
                "admin_listen set to that address?)",
                file=sys.stderr,
            )
        else:
            print(f"error: cannot reach the admin API at {args.url}: {reason}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: cannot reach the admin API at {args.url}: {err}", file=sys.stderr)
        return 1
    if isinstance(result, str):
        print(result, end="" if result.endswith("\n") else "\n")
    elif getattr(args, "json", False):
        print(json.dumps(result, indent=1))
    else:
        print(render(result))
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, list) and not any(isinstance(v, (list, dict)) for v in value):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":")) if value else "-"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells = [columns] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def render(result: Any, indent: str = "") -> str:
    """A JSON answer as text: scalars as `name  value`, lists of objects as tables."""
    if isinstance(result, list):
        if result and all(isinstance(r, dict) for r in result):
            return "\n".join(indent + line for line in table(result).splitlines())
        return indent + (", ".join(map(_cell, result)) or "-")
    if not isinstance(result, dict):
        return indent + _cell(result)
    lines: list[str] = []
    width = max((len(str(k)) for k in result), default=0)
    for key, value in result.items():
        if (isinstance(value, dict) and value) or (
            isinstance(value, list) and value and all(isinstance(r, dict) for r in value)
        ):
            lines.append(f"{indent}{key}:")
            lines.append(render(value, indent + "  "))
        else:
            lines.append(f"{indent}{str(key).ljust(width)}  {_cell(value)}")
    return "\n".join(lines)
