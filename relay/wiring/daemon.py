"""The daemon-wide settings: the spool, the event log, the admin API, DNS, DSNs, workers."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.config import ConfigError, Location, Problem, resolve
from relay.config import options as config_options
from relay.config.model import Config
from relay.config.values import HostPort
from relay.notify.settings import WebhookSettings


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    hostname: str
    spoolbase: Path
    force_fsync: bool
    max_resident_messages: int
    event_log: str | None
    event_log_max_size: int  # bytes; 0: rotate only when asked (SIGUSR1)
    event_log_keep: int
    admin_listen: HostPort | None
    admin_tls_certificate: Path | None
    admin_tls_key: Path | None
    admin_token_file: Path | None
    metrics_require_token: bool
    dsn_binding_group: str  # carries relay's own DSNs and alerts
    fbl_address: str | None
    injection_workers: int
    shutdown_timeout: float
    resolv_conf: str
    dns_port: int
    mx_failures_fallback_to_a: int | None
    webhooks: tuple[WebhookSettings, ...] = ()
    suppression_enabled: bool = True
    suppression_action: str = "reject"  # or "drop"
    mta_sts_policy_store: Path | None = None  # None: spoolbase / "mtasts"
    mta_sts_https_port: int = 443
    tls_reporting: bool = False
    tls_report_organization: str | None = None  # None: the host name
    tls_report_contact: str | None = None  # None: postmaster@hostname
    tls_ca: str | None = None  # the global tls_ca: CAs for TLS report HTTPS POSTs


def daemon_settings(config: Config) -> DaemonSettings:
    def get(option: str) -> Any:
        return resolve(config, option).value

    fallback = get("mx_failures_fallback_to_a")
    _check_admin(config)
    return DaemonSettings(
        hostname=str(get("hostname")),
        spoolbase=Path(str(get("spoolbase"))),
        force_fsync=bool(get("force_fsync")),
        max_resident_messages=int(get("max_resident_messages")),
        event_log=get("event_log"),
        event_log_max_size=int(get("event_log_max_size")),
        event_log_keep=int(get("event_log_keep")),
        admin_listen=get("admin_listen"),
        admin_tls_certificate=_path(get("admin_tls_certificate")),
        admin_tls_key=_path(get("admin_tls_key")),
        admin_token_file=_path(get("admin_token_file")),
        metrics_require_token=bool(get("metrics_require_token")),
        dsn_binding_group=str(get("dsn_binding_group")),
        fbl_address=get("fbl_address"),
        injection_workers=int(get("injection_workers")),
        shutdown_timeout=float(get("shutdown_timeout")),
        resolv_conf=str(get("resolv_conf")),
        dns_port=int(get("dns_port")),
        mx_failures_fallback_to_a=None if fallback is None else int(fallback),
        webhooks=_webhooks(config, Path(str(get("spoolbase"))), get("event_log")),
        suppression_enabled=bool(get("suppression_enabled")),
        suppression_action=str(get("suppression_action")),
        mta_sts_policy_store=_path(get("mta_sts_policy_store")),
        mta_sts_https_port=int(get("mta_sts_https_port")),
        tls_reporting=bool(get("tls_reporting")),
        tls_report_organization=get("tls_report_organization"),
        tls_report_contact=get("tls_report_contact"),
        tls_ca=get("tls_ca"),
    )


def _path(value: Any) -> Path | None:
    return None if value is None else Path(str(value))


def is_loopback(host: str) -> bool:
    """Whether an admin_listen host is loopback only (a name other than localhost: no)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_admin(config: Config) -> None:
    """The admin API's start-up refusals: an API beyond loopback without tokens, and a TLS
    certificate without its key (or the other way round)."""
    problems: list[Problem] = []
    listen = resolve(config, "admin_listen")
    where = listen.location or Location("<config>", 0, 0)
    if (
        listen.value is not None
        and not is_loopback(listen.value.host or "0.0.0.0")
        and resolve(config, "admin_token_file").value is None
    ):
        problems.append(
            Problem(
                where,
                f"{listen.value} is not a loopback address and admin_token_file is not set",
                "admin_listen",
                "set admin_token_file (NAME:SCOPE:TOKEN lines) or listen on 127.0.0.1",
            )
        )
    closed = resolve(config, "metrics_require_token")
    if closed.value and resolve(config, "admin_token_file").value is None:
        problems.append(
            Problem(
                closed.location or where,
                "metrics_require_token needs admin_token_file (no token could open /metrics)",
                "metrics_require_token",
            )
        )
    cert, key = resolve(config, "admin_tls_certificate"), resolve(config, "admin_tls_key")
    if (cert.value is None) != (key.value is None):
        given, missing = (cert, "admin_tls_key") if key.value is None else (key, cert.name)
        problems.append(
            Problem(
                given.location or where,
                f"{given.name} is set but {missing} is not",
                given.name,
                "set both for HTTPS, or neither",
            )
        )
    if problems:
        raise ConfigError(problems)


WEBHOOK_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _webhooks(
    config: Config, spoolbase: Path, event_log: str | None
) -> tuple[WebhookSettings, ...]:
    found: list[WebhookSettings] = []
    problems: list[Problem] = []
    for name, block in config.global_block.webhooks.items():
        where = block.locations[0] if block.locations else Location("<config>", 0, 0)

        def get(option: str) -> Any:
            setting = block.settings.get(option)  # noqa: B023 (used at once)
            if setting is None:
                return config_options.OPTIONS[option].default_value()
            return setting.value

        url = str(get("url"))
        url_at = block.settings["url"].location if "url" in block.settings else where
        if not WEBHOOK_NAME.fullmatch(name):
            problems.append(
                Problem(where, f"webhook name {name!r}: use letters, digits, _ . -", "webhook")
            )
        if not url.startswith(("http://", "https://")):
            problems.append(Problem(url_at, f"{url!r} is not an http:// or https:// URL", "url"))
        if event_log is None:
            problems.append(
                Problem(where, "a webhook reads the event log: set event_log", "webhook")
            )
        secret = get("secret_file")
        found.append(
            WebhookSettings(
                name=name,
                url=url,
                events=frozenset(str(e) for e in get("events")),
                batch_size=int(get("batch_size")),
                max_delay=float(get("max_delay")),
                secret_file=None if secret is None else Path(str(secret)),
                state=spoolbase / f"webhook-{name}.cursor",
            )
        )
    if problems:
        raise ConfigError(problems)
    return tuple(found)
