"""The cluster stanza's settings (`relay.cluster.settings.ClusterSettings`), or None when the
configuration has no cluster stanza (a single node, no Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relay.cluster.settings import ClusterSettings
from relay.config import options as o
from relay.config.model import Config
from relay.wiring.daemon import DaemonSettings


def cluster_settings(config: Config, daemon: DaemonSettings) -> ClusterSettings | None:
    block = config.cluster
    if block is None:
        return None

    def get(option: str) -> Any:
        setting = block.settings.get(option)
        return o.OPTIONS[option].default_value() if setting is None else setting.value

    url = get("redis_url")  # required (the configuration model checks it)
    password_file = get("redis_password_file")
    name = get("node_name") or f"{daemon.hostname}:{daemon.spoolbase}"
    return ClusterSettings(
        redis_url=str(url),
        node_name=str(name),
        key_prefix=str(get("key_prefix")),
        redis_password_file=Path(password_file) if password_file else None,
        redis_timeout=float(get("redis_timeout")),
        lease_period=float(get("lease_period")),
        heartbeat_interval=float(get("heartbeat_interval")),
    )
