"""The cluster stanza's settings (compiled by relay/wiring/cluster.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    redis_url: str
    node_name: str
    key_prefix: str
    redis_password_file: Path | None
    redis_timeout: float  # every Redis command
    lease_period: float  # a lease not renewed for this long is free again
    heartbeat_interval: float  # a node not seen for 3 intervals is no longer live
