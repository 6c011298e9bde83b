"""Injection's settings from the configuration: the listeners, their peers, TLS, AUTH and
limits (`relay.inject.settings.InjectSettings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relay.config.model import Config
from relay.config.resolve import resolve_listener
from relay.config.values import HostPort
from relay.inject.settings import InjectSettings, ListenerSettings, PeerSettings
from relay.wiring.dkim import dkim_settings


def listen_text(address: HostPort) -> str:
    host = address.host
    if ":" in host:
        return f"[{host}]:{address.port}"
    return f"{host}:{address.port}"


def _listener_value(config: Config, option: str, index: int | None) -> Any:
    return resolve_listener(config, option, listen_index=index).value


def _listener_set(config: Config, option: str, index: int) -> Any:
    """A value set in the listener's scopes (None, not the option's default, when unset:
    priority_class's default is the tenants')."""
    resolved = resolve_listener(config, option, listen_index=index)
    return None if resolved.scope is None else resolved.value


def _listen_level(config: Config, option: str, index: int) -> Any:
    """A value set on the listen stanza itself (None when it only falls back)."""
    setting = config.listens[index].block.settings.get(option)
    return None if setting is None else setting.value


def _limit(value: int) -> int | None:
    return None if value <= 0 else value


def inject_settings(config: Config, hostname: str) -> InjectSettings:
    listeners: list[ListenerSettings] = []
    for index, listen in enumerate(config.listens):
        if not _listener_value(config, "enable", index):
            continue
        peers = [
            PeerSettings(
                network,
                _setting(block.settings.get("binding_group")),
                _setting(block.settings.get("binding")),
                _setting(block.settings.get("tenant")),
                _setting(block.settings.get("campaign")),
                _setting(block.settings.get("priority_class")),
            )
            for network, block in (*listen.peers, *config.listener_peers)
        ]
        relay_hosts = _listen_level(config, "relay_hosts", index)
        max_connections = _listen_level(config, "max_connections", index)
        listeners.append(
            ListenerSettings(
                listen=listen_text(listen.address),
                binding_group=_listener_value(config, "binding_group", index),
                binding=_listener_value(config, "binding", index),
                tenant=_listener_value(config, "tenant", index),
                campaign=_listener_value(config, "campaign", index),
                priority=_listener_set(config, "priority_class", index),
                peers=tuple(peers),
                relay_hosts=tuple(relay_hosts) if relay_hosts is not None else None,
                max_connections=_limit(max_connections) if max_connections is not None else None,
                reuse_port=bool(_listener_value(config, "reuse_port", index)),
                backlog=int(_listener_value(config, "listen_backlog", index)),
            )
        )
    cert = _listener_value(config, "tls_certificate", None)
    key = _listener_value(config, "tls_key", None)
    auth = _listener_value(config, "auth_credentials_file", None)
    groups: dict[str, set[str]] = {name: set() for name in config.groups}
    for binding in config.bindings.values():
        groups.setdefault(binding.group, set()).add(binding.name)
    return InjectSettings(
        listeners=tuple(listeners),
        hostname=hostname,
        relay_hosts=tuple(_listener_value(config, "relay_hosts", None)),
        tls_certificate=Path(cert) if cert else None,
        tls_key=Path(key) if key else None,
        auth_credentials_file=Path(auth) if auth else None,
        max_message_size=int(_listener_value(config, "max_message_size", None)),
        max_recipients=int(_listener_value(config, "max_recipients_per_message", None)),
        idle_timeout=float(_listener_value(config, "inbound_idle_timeout", None)),
        data_timeout=float(_listener_value(config, "inbound_data_timeout", None)),
        max_connections_per_listener=_limit(int(_listener_value(config, "max_connections", None))),
        max_connections_per_ip=_limit(int(_listener_value(config, "max_connections_per_ip", None))),
        binding_groups={name: frozenset(members) for name, members in groups.items()},
        normalize_bare_line_endings=bool(
            _listener_value(config, "normalize_bare_line_endings", None)
        ),
        dkim=dkim_settings(config),
    )


def _setting(setting: Any) -> Any:
    return None if setting is None else setting.value
