"""`relay serve`: the daemon's life (signals, startup, main loop, drain)."""

from __future__ import annotations

import sys

from relay.config.model import Config


def serve(config: Config, path: str) -> int:
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for listen in config.listens:
        print(f"relay: would listen on {listen.address}")
    return 0
