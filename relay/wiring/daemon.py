"""The daemon-wide settings: the spool, the event log, the admin API, DNS, DSNs, workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.config import resolve
from relay.config.model import Config
from relay.config.values import HostPort


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    hostname: str
    spoolbase: Path
    force_fsync: bool
    max_resident_messages: int
    event_log: str | None
    admin_listen: HostPort | None
    dsn_binding_group: str  # carries relay's own DSNs and alerts
    fbl_address: str | None
    injection_workers: int
    shutdown_timeout: float
    resolv_conf: str
    dns_port: int
    mx_failures_fallback_to_a: int | None


def daemon_settings(config: Config) -> DaemonSettings:
    def get(option: str) -> Any:
        return resolve(config, option).value

    fallback = get("mx_failures_fallback_to_a")
    return DaemonSettings(
        hostname=str(get("hostname")),
        spoolbase=Path(str(get("spoolbase"))),
        force_fsync=bool(get("force_fsync")),
        max_resident_messages=int(get("max_resident_messages")),
        event_log=get("event_log"),
        admin_listen=get("admin_listen"),
        dsn_binding_group=str(get("dsn_binding_group")),
        fbl_address=get("fbl_address"),
        injection_workers=int(get("injection_workers")),
        shutdown_timeout=float(get("shutdown_timeout")),
        resolv_conf=str(get("resolv_conf")),
        dns_port=int(get("dns_port")),
        mx_failures_fallback_to_a=None if fallback is None else int(fallback),
    )
