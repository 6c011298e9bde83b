"""The `relay` command: maps arguments onto the config and the daemon, nothing more."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from relay.admin.client import add_commands as add_admin_commands
from relay.admin.client import run as run_admin
from relay.config import ConfigError, UnknownScope, load, resolve
from relay.config import values as v
from relay.config.lexer import is_bare_word
from relay.config.model import Config
from relay.config.printer import quote
from relay.tools.commands import add_commands as add_tool_commands
from relay.wiring import compile_settings
from relay.wiring.dkim import dkim_settings

DEFAULT_CONFIG = "config/relay.conf"
EXIT_CONFIG = 2
EVAL_SCOPES = ("binding_group", "binding", "domain", "host")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_CONFIG
    result: int = args.handler(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay",
        description="An SMTP outbound relay with Momentum-style bindings and binding groups.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the daemon",
        description="Run relay: accept mail on the configured listeners, spool it durably "
        "and deliver it through the bindings of each message's binding group.",
    )
    serve.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="configuration file")
    serve.set_defaults(handler=cmd_serve)

    admin = commands.add_parser(
        "admin",
        help="talk to a running daemon's admin API",
        description="Inspect and steer a running relay through its admin API "
        "(admin_listen in the configuration): summary, bindings, queues, adaptive state, "
        "suspend/resume/override/reset a binding x domain, flush, reload, metrics.",
    )
    add_admin_commands(admin)
    admin.set_defaults(handler=run_admin)

    config = commands.add_parser(
        "config", help="check or evaluate a configuration", description="Configuration tools."
    )
    config_commands = config.add_subparsers(title="config commands", metavar="COMMAND")
    check = config_commands.add_parser(
        "check",
        help="validate a configuration file",
        description="Validate FILE and its includes. Exit 0 with a one-line summary when it "
        "is valid (warnings about options relay does not act on go to stderr); exit 2 listing "
        "every error with file, line and column otherwise.",
    )
    check.add_argument("file", nargs="?", default=DEFAULT_CONFIG, help="configuration file")
    check.set_defaults(handler=cmd_check)

    ev = config_commands.add_parser(
        "eval",
        help="print an option's effective value and where it came from",
        description="Print OPTION's effective value for the given scopes, following "
        "Momentum's fallback (G::B::D, B::D, G::D, B, G, global::D, global, default), "
        "e.g. `relay config eval -c relay.conf binding_group g1 binding b1 domain "
        "example.com max_outbound_connections`. The second line names the scope the value "
        "came from.",
    )
    ev.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="configuration file")
    ev.add_argument(
        "words",
        nargs="+",
        metavar="[binding_group G] [binding B] [domain D] [host H] OPTION",
    )
    ev.set_defaults(handler=cmd_eval)

    add_tool_commands(commands)  # sink, health
    dkim = commands.add_parser("dkim", help="DKIM signing tools", description="DKIM signing tools.")
    dkim_commands = dkim.add_subparsers(title="dkim commands", metavar="COMMAND")
    record = dkim_commands.add_parser(
        "record",
        help="print the DNS TXT records to publish for a domain's signing keys",
        description="Print, as zone-file lines, the TXT record of every key relay signs "
        "DOMAIN's mail with (one per opendkim stanza that has a key for it).",
    )
    record.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="configuration file")
    record.add_argument("domain", metavar="DOMAIN", help="the From: domain")
    record.set_defaults(handler=cmd_dkim_record)
    return parser


def load_or_report(path: str) -> Config | None:
    """The configuration, with every DKIM key loaded once to prove it loads; None (the
    errors printed) when something is wrong."""
    try:
        config = load(path)
        compile_settings(config)  # the checks across options (e.g. admin_listen's)
        dkim_settings(config)
        return config
    except ConfigError as err:
        report(path, err)
        return None


def report(path: str, err: ConfigError) -> None:
    for problem in err.problems:
        print(f"error: {problem}", file=sys.stderr)
    count = len(err.problems)
    print(f"{path}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)


def summary(config: Config) -> str:
    groups = len(config.groups)
    bindings = len(config.bindings)
    domains = len(config.domain_names())
    listens = len(config.listens)
    return (
        f"{groups} binding group{'s' if groups != 1 else ''}, "
        f"{bindings} binding{'s' if bindings != 1 else ''}, "
        f"{domains} domain{'s' if domains != 1 else ''}, "
        f"{listens} listener{'s' if listens != 1 else ''}"
    )


def cmd_check(args: argparse.Namespace) -> int:
    config = load_or_report(args.file)
    if config is None:
        return EXIT_CONFIG
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.file}: OK: {summary(config)}")
    dkim = dkim_settings(config)
    for profile, domain, spec in dkim.keys() if dkim is not None else ():
        print(
            f'dkim: opendkim "{profile}": {domain} d={spec.domain or domain} s={spec.selector} '
            f"{spec.algorithm}: "
            f"{spec.key.kind} {spec.key.bits}-bit key {spec.key.path} loads "
            f"(publish: relay dkim record -c {args.file} {'DOMAIN' if domain == '*' else domain})"
        )
    return 0


def cmd_dkim_record(args: argparse.Namespace) -> int:
    from relay.sign.keys import txt_record

    config = load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG
    dkim = dkim_settings(config)
    domain = args.domain.lower().rstrip(".")
    lines = []
    for profile in dkim.profiles if dkim is not None else ():
        spec = profile.spec_for(domain)
        if spec is not None:
            lines.append(f'; opendkim "{profile.name}" ({spec.algorithm})')
            lines.append(txt_record(spec.selector, spec.domain or domain, spec.key))
    if not lines:
        print(f"error: no opendkim stanza in {args.config} has a key for {domain}", file=sys.stderr)
        return EXIT_CONFIG
    print("\n".join(lines))
    return 0


def format_value(value: object) -> str:
    text = v.display(value)
    if isinstance(value, str) and not is_bare_word(value):
        return quote(value)
    if isinstance(value, (v.Throttle, v.HostPort)):
        return quote(text)
    return text


def cmd_eval(args: argparse.Namespace) -> int:
    words: list[str] = list(args.words)
    option = words.pop()
    scopes: dict[str, str] = {}
    while words:
        if len(words) < 2 or words[0].lower() not in EVAL_SCOPES:
            print(
                f"error: expected one of {', '.join(EVAL_SCOPES)} followed by a name, "
                f"got {' '.join(words)!r}",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        scopes[words[0].lower()] = words[1]
        words = words[2:]
    config = load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG
    if option.lower() == "provider":
        return _eval_provider(config, scopes)
    try:
        result = resolve(
            config,
            option,
            group=scopes.get("binding_group"),
            binding=scopes.get("binding"),
            domain=scopes.get("domain"),
            host=scopes.get("host"),
        )
    except UnknownScope as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{result.name} = {format_value(result.value)}")
    print(f"# {result.origin()}")
    return 0


def _eval_provider(config: Config, scopes: dict[str, str]) -> int:
    """`config eval domain D provider`: the provider stanza the domain falls in."""
    import asyncio

    from relay.wiring.providers import domain_provider

    domain = scopes.get("domain")
    if domain is None:
        print("error: provider needs a domain: config eval domain D provider", file=sys.stderr)
        return EXIT_CONFIG
    provider, how, hosts = asyncio.run(domain_provider(config, domain))
    print(f"provider = {'none' if provider is None else quote(provider)}")
    detail = f" (MX: {' '.join(hosts) or 'none'})" if hosts is not None else ""
    origin = f'provider "{provider}" :: {how}' if provider is not None else how
    print(f"# {origin}{detail}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from relay.daemon import serve

    config = load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG
    try:
        return serve(config, args.config)
    except ConfigError as err:  # found at start-up: a token file, a TLS file
        report(args.config, err)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
