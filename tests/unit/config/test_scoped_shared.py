"""`scoped` with lookups shared between bindings: the same answers (value, scope, location)
as resolving each option on its own, whichever scope sets it."""

from __future__ import annotations

import pytest

from relay.config import loads, resolve
from relay.config import options as o
from relay.config.resolve import SharedLookups, UnknownScope, scoped

CONFIG = """
max_outbound_connections = 7
retry_interval = 600
domain "dest.test" { max_outbound_connections = 3 }
binding_group "g" {
  ehlo_hostname = "group.test"
  domain "dest.test" { retry_interval = 120 }
  binding "b1" { bind_address = 127.0.0.2 }
  binding "b2" {
    bind_address = 127.0.0.3
    max_outbound_connections = 11
    domain "dest.test" { ehlo_hostname = "b2-dest.test" }
  }
  binding "b3" { bind_address = 127.0.0.4 }
}
binding_group "h" {
  binding "c1" { bind_address = 127.0.0.5 }
}
"""

OPTIONS = (
    "max_outbound_connections",
    "retry_interval",
    "ehlo_hostname",
    "bind_address",
    "max_retries",
    "tls",
)


def test_shared_lookups_answer_as_resolve_does() -> None:
    config = loads(CONFIG)
    shared: SharedLookups = {}
    for _ in range(2):  # the second round answers from what the first one shared
        for binding in ("b1", "b2", "b3", "c1"):
            for domain in ("dest.test", "other.test"):
                get = scoped(config, binding=binding, domain=domain, shared=shared)
                for option in OPTIONS:
                    expected = resolve(config, option, binding=binding, domain=domain)
                    assert get(option) == expected, (binding, domain, option)
    assert shared  # it was used
    b2 = scoped(config, binding="b2", domain="dest.test", shared=shared)
    assert b2("ehlo_hostname").value == "b2-dest.test"
    assert b2("max_outbound_connections").value == 11
    assert b2("retry_interval").value == 120  # group::domain, before the binding's own block
    b1 = scoped(config, binding="b1", domain="dest.test", shared=shared)
    assert b1("max_outbound_connections").value == 3  # global::domain
    assert b1("max_retries").value == o.OPTIONS["max_retries"].default_value()


def test_an_unknown_option_is_refused_with_shared_lookups() -> None:
    get = scoped(loads(CONFIG), binding="b1", domain="dest.test", shared={})
    with pytest.raises(UnknownScope, match="no option 'no_such_option'"):
        get("no_such_option")
