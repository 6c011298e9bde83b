"""The `relay sink` and `relay health` command lines; the tools load only when run (so the
other commands start as fast as before)."""

from __future__ import annotations

import argparse

DEFAULT_SINK_LISTEN = "127.0.0.1:2525"
DEFAULT_HEALTH_TIMEOUT = 3.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sink = commands.add_parser(
        "sink",
        help="run an SMTP sink that records every message it receives",
        description="Accept every message on the given addresses and record it: "
        "DIR/<id>.eml and a JSON line in DIR/messages.jsonl with the peer address, the "
        "EHLO name, the envelope and the size. To try a configuration, point a domain's "
        "gateway at the sink. Stops on SIGTERM or SIGINT.",
    )
    sink.add_argument(
        "-l",
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help=f"address to listen on (repeatable; default {DEFAULT_SINK_LISTEN})",
    )
    sink.add_argument("-d", "--dir", default="./var/sink", help="where to record messages")
    sink.add_argument("--hostname", default="sink.relay.test", help="name in the greeting")
    sink.add_argument("--fsync", action="store_true", help="fsync each message before 250")
    sink.add_argument("-q", "--quiet", action="store_true", help="no line per message")
    sink.set_defaults(handler=_sink)

    health = commands.add_parser(
        "health",
        help="check that a running relay can take mail (the container health check)",
        description="Exit 0 when the spool directory of CONFIG takes a durable write and "
        "every SMTP listener of CONFIG answers with a greeting; exit 1 naming each failed "
        "check otherwise (2: the configuration itself is invalid). Uses no admin API.",
    )
    health.add_argument("-c", "--config", default="config/relay.conf", help="configuration file")
    health.add_argument(
        "--timeout", type=float, default=DEFAULT_HEALTH_TIMEOUT, help="seconds per listener"
    )
    health.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    health.set_defaults(handler=_health)


def _sink(args: argparse.Namespace) -> int:
    from relay.tools.sink import run

    args.listen = args.listen or [DEFAULT_SINK_LISTEN]
    return run(args)


def _health(args: argparse.Namespace) -> int:
    from relay.tools.health import run

    return run(args)
