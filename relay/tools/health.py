"""`relay health -c CONFIG`: can the daemon of this configuration take mail? Exit 0 when
its spool directory takes a durable write and every SMTP listener answers a connection with
an SMTP greeting; else exit 1, one line per failed check on stderr. Docker's HEALTHCHECK runs
it. It reads the configuration and the sockets only, not the admin API.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from dataclasses import dataclass

from relay.config import ConfigError, load
from relay.spool.errors import SpoolError
from relay.spool.probe import probe_writable
from relay.wiring import Settings, compile_settings

EXIT_UNHEALTHY = 1
EXIT_CONFIG = 2


@dataclass(frozen=True, slots=True)
class Check:
    what: str  # "spool /var/spool/relay", "listener 127.0.0.1:2525"
    ok: bool
    detail: str


def connect_address(host: str) -> str:
    """Where to reach a listener bound to `host` from this host (wildcards: loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def check_spool(settings: Settings) -> Check:
    directory = settings.daemon.spoolbase
    try:
        probe_writable(directory)
    except SpoolError as error:
        return Check(f"spool {directory}", False, str(error))
    return Check(f"spool {directory}", True, "writable")


def check_listener(listen: str, address: tuple[str, int], timeout: float) -> Check:
    """Connect, read the greeting (220, or 421 when the listener is at its connection
    limit: up, but busy), say QUIT."""
    host, port = connect_address(address[0]), address[1]
    what = f"listener {listen}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            greeting = _read_line(sock)
            with contextlib.suppress(OSError):  # the greeting was what counted
                sock.sendall(b"QUIT\r\n")
    except TimeoutError:
        return Check(what, False, f"no greeting from {host}:{port} within {timeout:g} s")
    except OSError as error:
        return Check(what, False, f"cannot connect to {host}:{port}: {error.strerror or error}")
    code = greeting[:3]
    if code == b"220":
        return Check(what, True, "answers 220")
    if code == b"421":
        return Check(what, True, "answers 421 (at its connection limit)")
    shown = greeting[:80].decode("ascii", "replace").strip() or "nothing"
    return Check(what, False, f"{host}:{port} greeted with {shown!r}, not an SMTP 220")


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < 1024:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def run_checks(settings: Settings, timeout: float = 3.0) -> list[Check]:
    results = [check_spool(settings)]
    for listener in settings.inject.listeners:
        results.append(check_listener(listener.listen, listener.address, timeout))
    return results


def run(args: argparse.Namespace) -> int:
    try:
        settings = compile_settings(load(args.config))
    except ConfigError as error:
        print(f"unhealthy: {args.config}: invalid configuration:\n{error}", file=sys.stderr)
        return EXIT_CONFIG
    results = run_checks(settings, args.timeout)
    failed = [check for check in results if not check.ok]
    for check in results:
        if not check.ok:
            print(f"unhealthy: {check.what}: {check.detail}", file=sys.stderr)
        elif not args.quiet:
            print(f"ok: {check.what}: {check.detail}")
    return EXIT_UNHEALTHY if failed else 0
