"""The cluster stanza: read into ClusterSettings, absent means a single node, and mistakes name
the file, line and option."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, loads
from relay.config.values import Throttle
from relay.wiring import compile_settings


def test_no_cluster_stanza_is_a_single_node() -> None:
    settings = compile_settings(loads('hostname = "relay.test"\n'))
    assert settings.cluster is None
    route = settings.routes.get("default", "x.test")
    assert route.cluster_message_throttle is None and route.cluster_caps == ()


def test_the_cluster_stanza_and_the_cluster_limits() -> None:
    config = loads(
        """
hostname = "relay.test"
spoolbase = "/var/spool/relay1"
cluster {
  redis_url = "redis://127.0.0.1:6379/0"
  key_prefix = "mta:"
  redis_password_file = "/etc/relay/redis.pw"
}
binding_group "g" {
  cluster_outbound_throttle_messages = "100/60"
  binding "a" { }
}
domain "x.test" {
  cluster_outbound_throttle_connections = "5/1"
  cluster_scope_max_outbound_connections = 3
}
cluster_server_max_outbound_connections = 50
esmtp_listener { listen "127.0.0.1:2525" { reuse_port = true } }
"""
    )
    settings = compile_settings(config)
    cluster = settings.cluster
    assert cluster is not None
    assert cluster.redis_url == "redis://127.0.0.1:6379/0"
    assert cluster.node_name == "relay.test:/var/spool/relay1"  # hostname + spoolbase
    assert cluster.key_prefix == "mta:"
    assert cluster.redis_password_file == Path("/etc/relay/redis.pw")
    route = settings.routes.get("a", "x.test")
    # One bucket per defining scope, as the local throttles.
    assert route.cluster_message_throttle == (
        ("cluster_messages", ("binding_group", "g")),
        Throttle(100, 60.0),
    )
    assert route.cluster_connection_throttle == (
        ("cluster_connections", ("domain", "x.test")),
        Throttle(5, 1.0),
    )
    assert route.cluster_caps == (
        (("cluster_scope", ("domain", "x.test")), 3),
        (("cluster_server", ()), 50),
    )
    assert settings.inject.listeners[0].reuse_port


def test_a_cluster_stanza_needs_redis_url() -> None:
    with pytest.raises(ConfigError) as info:  # `relay config check` says so too
        loads('cluster {\n  node_name = "n1"\n}\n', "relay.conf")
    problem = info.value.problems[0]
    assert problem.location.file == "relay.conf" and problem.location.line == 1
    assert "redis_url" in problem.message


def test_cluster_options_belong_in_the_cluster_stanza() -> None:
    with pytest.raises(ConfigError) as info:
        loads('domain "x.test" {\n  redis_url = "redis://127.0.0.1"\n}\n', "relay.conf")
    problem = info.value.problems[0]
    assert problem.location.line == 2 and problem.option == "redis_url"
    with pytest.raises(ConfigError) as info:
        loads('binding "b" {\n  cluster { }\n}\n', "relay.conf")
    assert info.value.problems[0].location.line == 2


def test_a_cluster_limit_without_a_cluster_stanza_is_warned_about() -> None:
    config = loads(
        'domain "x.test" {\n  cluster_outbound_throttle_messages = "10/1"\n}\n', "r.conf"
    )
    (warning,) = config.warnings
    assert warning.option == "cluster_outbound_throttle_messages"
    assert warning.location.line == 2 and "cluster stanza" in warning.message
