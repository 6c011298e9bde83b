"""The settings compile step: one `Config` in, typed frozen settings for every component out.

    settings = compile_settings(config)      # at start, and again at each reload
    settings.daemon.spoolbase                # daemon-wide (wiring/daemon.py)
    settings.inject                          # relay.inject's InjectSettings (wiring/inject.py)
    settings.routes.get(binding, domain)     # per binding x domain (wiring/routes.py): the
                                             # scheduler's part, .delivery, .adaptive
    settings.host_limits.limit(binding, ip)  # host-scope max_outbound_connections
    settings.bindings[name].bind_address     # each binding's group, address, weight
    settings.providers                       # provider stanzas (schedule/providers.py)

This package is the only place that reads option names (relay/config/options.py); the
components take their typed settings and import nothing from here. Compiling is cheap except
the per binding x domain part, which `RouteTable` builds on first use and keeps until the next
configuration is compiled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relay.bind.build import BindingSettings
from relay.cluster.settings import ClusterSettings
from relay.config import resolve
from relay.config.model import Config
from relay.config.resolve import chain
from relay.inject.settings import InjectSettings
from relay.schedule.fair import Fairness
from relay.schedule.limits import Cap
from relay.schedule.providers import ProviderRule
from relay.schedule.smtp_transport import HostLimits
from relay.wiring.cluster import cluster_settings
from relay.wiring.daemon import DaemonSettings, daemon_settings
from relay.wiring.inject import inject_settings
from relay.wiring.providers import fairness, provider_rules
from relay.wiring.routes import RouteTable

__all__ = ["DaemonSettings", "Settings", "compile_settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one configuration says, per component."""

    daemon: DaemonSettings
    inject: InjectSettings
    groups: tuple[str, ...]  # binding group names, as declared
    bindings: Mapping[str, BindingSettings]
    host_limits: HostLimits
    routes: RouteTable
    cluster: ClusterSettings | None = None  # the cluster stanza; None: a single node
    providers: tuple[ProviderRule, ...] = ()
    fairness: Fairness = field(default_factory=Fairness)


def compile_settings(config: Config) -> Settings:
    daemon = daemon_settings(config)
    return Settings(
        daemon=daemon,
        inject=inject_settings(config, daemon.hostname),
        groups=tuple(config.groups),
        bindings={name: _binding(config, name) for name in config.bindings},
        host_limits=_host_limits(config),
        routes=RouteTable(config, daemon.hostname),
        cluster=cluster_settings(config, daemon),
        providers=provider_rules(config),
        fairness=fairness(config),
    )


def _binding(config: Config, name: str) -> BindingSettings:
    address = resolve(config, "bind_address", binding=name).value
    return BindingSettings(
        name,
        config.bindings[name].group,
        None if address is None else str(address),
        int(resolve(config, "binding_weight", binding=name).value),
    )


def _host_limits(config: Config) -> HostLimits:
    """Each binding's host stanzas with max_outbound_connections (or
    cluster_scope_max_outbound_connections), most specific scope first (binding, group,
    global), as `resolve(..., host=ip)` finds them."""
    by_binding: dict[str, dict[str, int]] = {}
    cluster: dict[str, dict[str, Cap]] = {}
    for name in config.bindings:
        limits: dict[str, int] = {}
        caps: dict[str, Cap] = {}
        for block in chain(config, binding=name):  # no domain: binding, group, global
            for host, host_block in block.hosts.items():
                setting = host_block.settings.get("max_outbound_connections")
                if setting is not None and host not in limits:
                    limits[host] = -1 if setting.value is None else int(setting.value)
                shared = host_block.settings.get("cluster_scope_max_outbound_connections")
                if shared is not None and shared.value is not None and host not in caps:
                    caps[host] = (("cluster_host", host_block.path), int(shared.value))
        if limits:
            by_binding[name] = limits
        if caps:
            cluster[name] = caps
    return HostLimits(by_binding, cluster)
