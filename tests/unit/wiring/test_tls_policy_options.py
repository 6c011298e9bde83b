"""MTA-STS / DANE / TLS reporting options: scopes, the `dane {}` module stanza, and where
the compile step puts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, loads
from relay.wiring import compile_settings

CONFIG = """
dane {}
use_dane = true
mta_sts_https_port = 8443
tls_reporting = yes
tls_report_organization = "relay.test"
domain "sts.test" { use_mta_sts = true }
binding_group "g" {
  enable_dane = false
  binding "a" { domain "sts.test" { enable_mta_sts = false } }
  binding "b" { }
}
"""


def test_options_compile_along_the_fallback_chain() -> None:
    settings = compile_settings(loads(CONFIG))
    daemon = settings.daemon
    assert (daemon.mta_sts_https_port, daemon.tls_reporting) == (8443, True)
    assert daemon.tls_report_organization == "relay.test"
    assert daemon.mta_sts_policy_store is None  # the spool's mtasts/ directory
    a = settings.routes.get("a", "sts.test").delivery
    assert (a.use_mta_sts, a.enable_mta_sts, a.use_dane, a.enable_dane) == (
        True,
        False,
        True,
        False,
    )
    b = settings.routes.get("b", "other.test").delivery
    assert (b.use_mta_sts, b.enable_mta_sts, b.use_dane, b.enable_dane) == (
        False,
        True,
        True,
        False,
    )
    default = settings.routes.get("default", "sts.test").delivery
    assert (default.use_mta_sts, default.enable_mta_sts, default.enable_dane) == (True, True, True)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('binding "x" { use_mta_sts = true }', "use_mta_sts: not valid in the binding scope"),
        ('binding "x" { use_dane = true }', "use_dane: not valid in the binding scope"),
        ('domain "d.test" { mta_sts_https_port = 1 }', "mta_sts_https_port: not valid"),
        ("mta_sts_https_port = 0", "mta_sts_https_port"),
        ("dane { use_dane = true }", "use_dane: not valid in the dane scope"),
    ],
)
def test_misplaced_options_name_file_line_and_option(text: str, why: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as failed:
        loads(text, str(tmp_path / "relay.conf"))
    assert why in str(failed.value)
    assert "relay.conf:1:" in str(failed.value)
