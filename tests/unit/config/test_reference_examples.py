"""Every example of binding_group.md, ecelerity.conf.fallback.md (15.1-15.3) and the
max_outbound_connections / outbound_throttle_messages pages evaluates as the pages say."""

from __future__ import annotations

from collections.abc import Callable

from relay.config import Config, resolve
from relay.config.values import Throttle

Conf = Callable[[str], Config]


def test_example_15_1_domain_scope(conf: Conf) -> None:
    c = conf(
        """
max_outbound_connections = 40
domain "example.com" {
  max_outbound_connections = 20
}
domain "someotherexample.com" {
  max_resident_active_queue_size = 500
}
"""
    )
    assert resolve(c, "max_outbound_connections", domain="example.com").value == 20
    other = resolve(c, "max_outbound_connections", domain="someotherexample.com")
    assert other.value == 40
    assert other.origin() == "from global"


EXAMPLE_15_2 = """
message_expiration = 86400

binding "example" {
  message_expiration = 3600
}

domain "example.com" {
  message_expiration = 120
}

binding "example2" {
  message_expiration = 7200

  domain example.com {
    message_expiration = 86400
  }

  domain "anotherexample.com" {
    max_resident_active_queue_size = 500
  }
}

binding "example3" {

  domain "example.com" {
    max_resident_active_queue_size = 500
  }

  domain "anotherexample.com" {
    message_expiration = 86400
  }
}
"""


def test_example_15_2_binding_scope(conf: Conf) -> None:
    c = conf(EXAMPLE_15_2)

    def exp(binding: str | None, domain: str | None) -> float:
        value: float = resolve(c, "message_expiration", binding=binding, domain=domain).value
        return value

    assert exp(None, None) == 86400
    assert exp("example", "example.com") == 3600
    assert exp("example", "other.com") == 3600
    assert exp("example2", "example.com") == 86400
    assert exp("example2", "anotherexample.com") == 7200
    assert exp("example2", "other.com") == 7200
    assert exp("example3", "anotherexample.com") == 86400
    assert exp("example3", "example.com") == 120
    assert exp("example3", "other.com") == 86400
    assert exp(None, "example.com") == 120


EXAMPLE_15_3 = """
max_outbound_connections = 30

binding_group "group1" {
  max_outbound_connections = 5

  binding "example" {
    bind_address = 10.10.10.10
    max_outbound_connections = 15

    domain "example.com" {
      #some other options
    }
  }
}
"""


def test_example_15_3_binding_group(conf: Conf) -> None:
    c = conf(EXAMPLE_15_3)
    result = resolve(
        c, "max_outbound_connections", group="group1", binding="example", domain="example.com"
    )
    assert result.value == 15
    assert result.origin() == 'from binding_group "group1" :: binding "example"'


def test_example_15_3_without_binding_value_falls_to_group(conf: Conf) -> None:
    c = conf(EXAMPLE_15_3.replace("    max_outbound_connections = 15\n", ""))
    result = resolve(
        c, "max_outbound_connections", group="group1", binding="example", domain="example.com"
    )
    assert result.value == 5
    assert result.origin() == 'from binding_group "group1"'


def test_max_outbound_connections_page(conf: Conf) -> None:
    c = conf(
        """
Max_Outbound_Connections = 30
Domain "example.com" {
  opendkim_sign = "true"
}
Binding_Group "group1" {
  Max_Outbound_Connections = 5
  Binding "example" {
    Bind_Address = "10.10.10.10"
    Max_Outbound_Connections = 15
    Domain "example.com" {
      #some other options
    }
  }
  Binding "sibling" {
    Bind_Address = "10.10.10.11"
  }
}
Binding "outsider" {
  Bind_Address = "10.10.10.12"
}
"""
    )
    mob = "max_outbound_connections"
    assert resolve(c, mob, binding="example", domain="example.com").value == 15
    assert resolve(c, mob, binding="sibling", domain="example.com").value == 5
    assert resolve(c, mob, binding="outsider", domain="example.com").value == 30


def test_max_outbound_connections_yahoofriends(conf: Conf) -> None:
    c = conf(
        """
Binding "yahoofriends" {
  Domain "yahoo.com" {
    Max_Outbound_Connections = 30
  }
}
Binding "other" {}
Domain "yahoo.com" {
  Max_Outbound_Connections = 10
}
"""
    )
    mob = "max_outbound_connections"
    assert resolve(c, mob, binding="yahoofriends", domain="yahoo.com").value == 30
    assert resolve(c, mob, binding="other", domain="yahoo.com").value == 10
    assert resolve(c, mob, binding="other", domain="gmail.com").value == 32  # built-in


def test_max_outbound_connections_host_scope_has_no_fallback(conf: Conf) -> None:
    c = conf(
        """
Max_Outbound_Connections = 32
host "example.com" {}
host "limited.example" { max_outbound_connections = 3 }
"""
    )
    assert resolve(c, "max_outbound_connections").value == 32
    assert resolve(c, "max_outbound_connections", host="example.com").value == -1
    assert resolve(c, "max_outbound_connections", host="limited.example").value == 3


def test_outbound_throttle_is_shared_by_defining_scope(conf: Conf) -> None:
    c = conf(
        """
binding_group "mygroup" {
  Outbound_Throttle_Messages = "10"
  binding "mybinding1" {}
  binding "mybinding2" {}
  domain "mydomain1" {}
}
"""
    )
    otm = "outbound_throttle_messages"
    one = resolve(c, otm, binding="mybinding1", domain="x.com")
    two = resolve(c, otm, binding="mybinding2", domain="mydomain1")
    assert one.value == two.value == Throttle(10, 1.0)
    assert one.scope == two.scope == ("binding_group", "mygroup")


def test_outbound_throttle_individual_scopes(conf: Conf) -> None:
    c = conf(
        """
binding_group "mygroup" {
  outbound_throttle_messages = "10"
  binding "mybinding1" {
    outbound_throttle_messages = "10"
  }
  binding "mybinding2" {
    outbound_throttle_messages = "10"
  }
  domain "mydomain1" {
    outbound_throttle_messages = "10"
  }
}
"""
    )
    otm = "outbound_throttle_messages"
    scopes = {
        resolve(c, otm, binding="mybinding1").scope,
        resolve(c, otm, binding="mybinding2").scope,
        resolve(c, otm, group="mygroup", domain="mydomain1").scope,
    }
    assert len(scopes) == 3


def test_throttle_regex_domain_is_one_scope(conf: Conf) -> None:
    c = conf(
        """
Domain "/(?:^|[.])example[.](?:com|co[.]uk)$/" {
  Outbound_Throttle_Messages = 10
}
"""
    )
    otm = "outbound_throttle_messages"
    com = resolve(c, otm, domain="www.example.com")
    uk = resolve(c, otm, domain="example.co.uk")
    assert com.value == uk.value == Throttle(10, 1.0)
    assert com.scope == uk.scope
    assert resolve(c, otm, domain="example.org").value is None


def test_throttle_with_period(conf: Conf) -> None:
    c = conf('outbound_throttle_messages = "1/60"\n')
    assert resolve(c, "outbound_throttle_messages").value == Throttle(1, 60.0)


def test_binding_group_page_examples(conf: Conf) -> None:
    c = conf(
        """
binding_group "group1" {
  max_outbound_connections = 5

  binding "example" {
    bind_address = "10.10.10.10"
  }

  binding "example2" {
    bind_address = "10.10.10.11"
  }
}
"""
    )
    assert [b.name for b in c.group_members("group1")] == ["example", "example2"]
    assert resolve(c, "max_outbound_connections", binding="example2").value == 5
    assert resolve(c, "bind_address", binding="example2").value == "10.10.10.11"


def test_binding_group_repeated_stanzas_merge(conf: Conf) -> None:
    c = conf(
        """
binding_group "group1" {
  max_outbound_connections = 5

  binding "example" {
    bind_address = "10.10.10.10"
  }
}
# Perhaps this piece is included from an auxillary configuration file
binding_group "group1" {
  binding "example2" {
    bind_address = "10.10.10.11"
  }
}
"""
    )
    assert {b.name for b in c.group_members("group1")} == {"example", "example2"}
    assert resolve(c, "max_outbound_connections", binding="example2").value == 5


def test_default_group_and_binding_exist_and_may_be_declared(conf: Conf) -> None:
    c = conf(
        """
binding_group "default" {
  ehlo_hostname = "example.com"
}
"""
    )
    assert "default" in c.groups
    assert "default" in c.bindings
    assert c.bindings["default"].group == "default"
    assert resolve(c, "ehlo_hostname", binding="default").value == "example.com"
    assert resolve(c, "ehlo_hostname", group="default").value == "example.com"


def test_top_level_binding_belongs_to_default_group(conf: Conf) -> None:
    c = conf('binding "lonely" { bind_address = 127.0.0.9 }\n')
    assert c.bindings["lonely"].group == "default"


def test_binding_declared_in_group_and_at_top_level_is_one_binding(conf: Conf) -> None:
    c = conf(
        """
binding_group "g" {
  binding "b" { domain "x.com" { retry_interval = 10 } }
}
binding "b" {
  max_outbound_connections = 7
  domain "x.com" { retry_interval = 20 }
}
"""
    )
    assert c.bindings["b"].group == "g"
    r = resolve(c, "retry_interval", binding="b", domain="x.com")
    assert r.value == 10  # G::B::D beats B::D
    assert resolve(c, "max_outbound_connections", binding="b").value == 7


def test_full_fallback_order(conf: Conf) -> None:
    c = conf(
        """
retry_interval = 1
domain "d.com" { retry_interval = 2 }
binding_group "g" {
  retry_interval = 3
  domain "d.com" { retry_interval = 5 }
  binding "b" {
    retry_interval = 4
    domain "d.com" { retry_interval = 7 }
  }
}
binding "b" { domain "d.com" { retry_interval = 6 } }
"""
    )
    got = resolve(c, "retry_interval", group="g", binding="b", domain="d.com")
    assert got.value == 7
    assert got.origin() == 'from binding_group "g" :: binding "b" :: domain "d.com"'
    assert resolve(c, "retry_interval", binding="b", domain="other").value == 4
    assert resolve(c, "retry_interval", group="g", domain="d.com").value == 5
    assert resolve(c, "retry_interval", group="g").value == 3
    assert resolve(c, "retry_interval", domain="d.com").value == 2
    assert resolve(c, "retry_interval").value == 1


def test_exact_domain_beats_regex_and_case_is_ignored(conf: Conf) -> None:
    c = conf(
        """
domain "/example/" { retry_interval = 1 }
domain "Example.COM" { retry_interval = 2 }
"""
    )
    assert resolve(c, "retry_interval", domain="EXAMPLE.com").value == 2
    assert resolve(c, "retry_interval", domain="sub.example.net").value == 1


def test_defaults_come_from_the_registry(conf: Conf) -> None:
    c = conf("")
    r = resolve(c, "max_outbound_connections")
    assert (r.value, r.origin()) == (32, "default")
    assert resolve(c, "retry_interval").value == 1200
    assert resolve(c, "adaptive_default_suspension").value == 4 * 3600
    assert resolve(c, "tls").value == "no"
    assert resolve(c, "adaptive_notification_events").value == (
        "throttle",
        "suspension",
        "blackhole",
    )
