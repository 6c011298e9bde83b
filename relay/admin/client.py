"""`relay admin ...`: the CLI over the admin HTTP API (blocking is fine in a CLI)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:2580"


def request(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as reply:
        text = reply.read().decode()
    return text if path == "/metrics" else json.loads(text)


def add_commands(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"admin API (default {DEFAULT_URL})")
    commands = parser.add_subparsers(title="admin commands", metavar="COMMAND", required=True)
    for name, text in (
        ("summary", "spool, queues, connections, event counts"),
        ("bindings", "binding groups and their bindings, with suspensions"),
        ("queues", "ready queues per binding x domain, scheduled mail per group x domain"),
        ("adaptive", "adaptive delivery's view of every binding x domain"),
        ("nodes", "the cluster's live nodes: versions, queue sizes, last seen"),
        ("reload", "re-read the configuration (refused if invalid)"),
        ("metrics", "Prometheus metrics"),
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
    flush = commands.add_parser("flush", help="make delayed mail due now")
    flush.add_argument("domain", nargs="?")
    flush.set_defaults(admin="flush")


def run(args: argparse.Namespace) -> int:
    name: str = args.admin
    gets = {"summary", "bindings", "queues", "adaptive", "metrics", "nodes"}
    try:
        if name in gets:
            path = "/metrics" if name == "metrics" else f"/api/v1/{name}"
            result = request(args.url, "GET", path)
        elif name in ("reload", "flush"):
            body = {"domain": args.domain} if name == "flush" and args.domain else {}
            result = request(args.url, "POST", f"/api/v1/{name}", body)
        else:
            body = {"binding": args.binding, "domain": args.domain}
            if name == "suspend":
                body.update(duration=args.duration, reason=args.reason)
            if name == "override":
                body.update(option=args.option, value=args.value)
            result = request(args.url, "POST", f"/api/v1/adaptive/{name}", body)
    except urllib.error.HTTPError as err:
        print(f"error: {err.code}: {err.read().decode().strip()}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: cannot reach the admin API at {args.url}: {err}", file=sys.stderr)
        return 1
    print(result if isinstance(result, str) else json.dumps(result, indent=1))
    return 0
