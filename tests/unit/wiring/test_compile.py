"""The settings compile step agrees with the resolver it replaces on the hot path."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from relay.adaptive.knobs import KNOBS
from relay.config import loads, resolve
from relay.wiring import compile_settings
from relay.wiring.routes import LIVE_KNOBS

CONFIG = """
hostname = "relay.test"
max_outbound_connections = 7
host "192.0.2.1" { max_outbound_connections = 1 }
host "192.0.2.3" { }
binding_group "g" {
  max_outbound_connections = 5
  host "192.0.2.2" { max_outbound_connections = 2 }
  binding "a" {
    bind_address = 127.0.0.1
    host "192.0.2.1" { max_outbound_connections = 3 }
    domain "x.test" { max_outbound_connections = 4 ehlo_timeout = 9 }
  }
  binding "b" { binding_weight = 3 }
}
"""


def test_host_limits_match_the_resolver() -> None:
    config = loads(CONFIG)
    limits = compile_settings(config).host_limits
    for binding in ("a", "b"):
        for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.9"):
            value = resolve(config, "max_outbound_connections", binding=binding, host=ip).value
            assert limits.limit(binding, ip) == (-1 if value is None else int(value)), (binding, ip)
    assert limits.limit("a", "192.0.2.1") == 3
    assert limits.limit("b", "192.0.2.1") == 1


def test_host_scope_cluster_caps_are_keyed_by_the_host_stanza_that_sets_them() -> None:
    config = loads(
        CONFIG
        + """
host "192.0.2.7" { cluster_scope_max_outbound_connections = 3 }
binding "c" { host "192.0.2.7" { cluster_scope_max_outbound_connections = 1 } }
"""
    )
    limits = compile_settings(config).host_limits
    shared = (("cluster_host", ("host", "192.0.2.7")), 3)
    assert limits.cluster_cap("a", "192.0.2.7") == shared  # global host: across bindings
    assert limits.cluster_cap("b", "192.0.2.7") == shared
    assert limits.cluster_cap("c", "192.0.2.7") == (
        ("cluster_host", ("binding", "c", "host", "192.0.2.7")),
        1,
    )
    assert limits.cluster_cap("a", "192.0.2.1") is None


def test_daemon_binding_and_route_settings() -> None:
    settings = compile_settings(loads(CONFIG))
    assert settings.daemon.hostname == "relay.test"
    assert settings.bindings["a"].bind_address == "127.0.0.1"
    assert (settings.bindings["b"].group, settings.bindings["b"].weight) == ("g", 3)
    route = settings.routes.get("a", "x.test")
    assert (route.max_connections, route.delivery.ehlo_timeout) == (4, 9.0)
    assert route.delivery.bind_address == "127.0.0.1"
    assert route.adaptive.alert_email_sender == "MAILER-DAEMON@relay.test"
    assert settings.routes.get("a", "x.test") is route  # built once per configuration
    assert settings.routes.get("b", "x.test").max_connections == 5


def test_every_managed_option_has_a_live_knob() -> None:
    assert sorted(k.option for k in LIVE_KNOBS) == sorted(KNOBS)


def test_live_values_land_where_the_configured_ones_came_from() -> None:
    routes = compile_settings(loads(CONFIG)).routes
    route = routes.get("a", "x.test")
    assert routes.with_live_values(route, lambda option, value: value) == route

    def live(option: str, configured: Any) -> Any:
        return {"max_outbound_connections": 2, "ehlo_timeout": 30.0, "idle_timeout": 9.0}.get(
            option, configured
        )

    moved = routes.with_live_values(route, live)
    assert moved.max_connections == 2 and moved.caps[0][1] == 2
    assert moved.delivery.ehlo_timeout == 30.0
    assert moved.idle_timeout == moved.delivery.idle_timeout == 9.0
    assert moved == replace(
        route,
        max_connections=2,
        caps=((route.caps[0][0], 2), *route.caps[1:]),
        delivery=replace(route.delivery, ehlo_timeout=30.0, idle_timeout=9.0),
        idle_timeout=9.0,
    )
