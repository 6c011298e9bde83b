"""The relay command: config check and config eval, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[3]


def relay(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_config_checks() -> None:
    done = relay("config", "check", "config/relay.conf")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("config/relay.conf: OK:")
    assert "binding groups" in done.stdout and "bindings" in done.stdout


def test_check_reports_errors_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text('binding "b" {\n  bind_adress = 127.0.0.2\n}\nretry_interval = x\n')
    done = relay("config", "check", str(bad))
    assert done.returncode == 2
    assert f"{bad}:2:3: bind_adress: unknown option (did you mean 'bind_address'?)" in done.stderr
    assert f"{bad}:4:1: retry_interval: bad value" in done.stderr
    assert "2 errors" in done.stderr


def test_check_warns_about_options_not_acted_on(tmp_path: Path) -> None:
    path = tmp_path / "r.conf"
    path.write_text("gcm_ttl = 5\n")
    done = relay("config", "check", str(path))
    assert done.returncode == 0
    assert "gcm_ttl: accepted for compatibility but ignored" in done.stderr


def test_eval_fallback_example_15_3(tmp_path: Path) -> None:
    path = tmp_path / "r.conf"
    path.write_text(
        "max_outbound_connections = 30\n"
        'binding_group "group1" {\n  max_outbound_connections = 5\n'
        '  binding "example" {\n    bind_address = 10.10.10.10\n'
        "    max_outbound_connections = 15\n"
        '    domain "example.com" {\n    }\n  }\n}\n'
    )
    done = relay(
        "config",
        "eval",
        "-c",
        str(path),
        "binding_group",
        "group1",
        "binding",
        "example",
        "domain",
        "example.com",
        "max_outbound_connections",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "max_outbound_connections = 15",
        '# from binding_group "group1" :: binding "example"',
    ]
    default = relay("config", "eval", "-c", str(path), "retry_interval")
    assert default.stdout.splitlines() == ["retry_interval = 1200", "# default"]
    host = relay("config", "eval", "-c", str(path), "host", "mx.x", "max_outbound_connections")
    assert host.stdout.splitlines()[0] == "max_outbound_connections = -1"


def test_eval_unknown_binding_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.conf"
    path.write_text("")
    done = relay("config", "eval", "-c", str(path), "binding", "nope", "retry_interval")
    assert done.returncode == 2
    assert 'no binding "nope"' in done.stderr


def test_help_explains_each_command() -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["config", "check", "--help"],
        ["config", "eval", "--help"],
    ):
        done = relay(*args)
        assert done.returncode == 0
        assert "usage: relay" in done.stdout
