"""`relay config check` with opendkim stanzas and options relay will not act on, and
`relay dkim record`, run as real subprocesses."""

from __future__ import annotations

from pathlib import Path

from relay.sign.keys import load_key
from tests.support.dkim_tools import write_key
from tests.unit.cli.test_cli import relay


def config(tmp_path: Path, ed_key: str = "ed.pem") -> Path:
    write_key(tmp_path / "keys" / "example.com" / "s1.pem")
    write_key(tmp_path / "keys" / "ed.pem", "ed25519")
    path = tmp_path / "relay.conf"
    path.write_text(
        f"""opendkim "rsa" {{
  key = "{tmp_path}/keys/%{{d}}/%{{s}}.pem"
  selector = "s1"
}}
opendkim "ed" {{
  digest = "ed25519-sha256"
  key = "{tmp_path}/keys/{ed_key}"
  selector = "ed1"
}}
"""
    )
    return path


def test_check_verifies_every_key(tmp_path: Path) -> None:
    path = config(tmp_path)
    done = relay("config", "check", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == (
        f'dkim: opendkim "rsa": example.com d=example.com s=s1 rsa-sha256: rsa 2048-bit key '
        f"{tmp_path}/keys/example.com/s1.pem loads "
        f"(publish: relay dkim record -c {path} example.com)"
    )
    assert lines[2].startswith('dkim: opendkim "ed": * d=* s=ed1 ed25519-sha256: ed25519')


def test_check_fails_on_a_bad_key_naming_file_line_and_option(tmp_path: Path) -> None:
    path = config(tmp_path, ed_key="absent.pem")
    done = relay("config", "check", str(path))
    assert done.returncode == 2
    assert f"{path}:7:3: key: key file {tmp_path}/keys/absent.pem does not exist" in done.stderr
    serve = relay("serve", "-c", str(path))
    assert serve.returncode == 2 and "absent.pem does not exist" in serve.stderr


def test_dkim_record_prints_each_key_to_publish(tmp_path: Path) -> None:
    path = config(tmp_path)
    done = relay("dkim", "record", "-c", str(path), "Example.com")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == '; opendkim "rsa" (rsa-sha256)'
    rsa = load_key(tmp_path / "keys" / "example.com" / "s1.pem")
    assert lines[1].startswith("s1._domainkey.example.com. IN TXT ( ")
    assert "".join(lines[1].split('"')[1::2]) == rsa.record_text()
    ed = load_key(tmp_path / "keys" / "ed.pem")
    assert lines[3] == f'ed1._domainkey.example.com. IN TXT ( "{ed.record_text()}" )'
    other = relay("dkim", "record", "-c", str(path), "other.test")
    assert other.stdout.splitlines()[1].startswith("ed1._domainkey.other.test.")  # ed: any domain


def test_dkim_record_for_a_domain_without_key(tmp_path: Path) -> None:
    path = tmp_path / "relay.conf"
    write_key(tmp_path / "k" / "a.test" / "s.pem")
    path.write_text(f'opendkim "x" {{ key = "{tmp_path}/k/%{{d}}/%{{s}}.pem" selector = s }}\n')
    done = relay("dkim", "record", "-c", str(path), "b.test")
    assert done.returncode == 2
    assert "no opendkim stanza" in done.stderr and "b.test" in done.stderr


def test_options_relay_will_not_act_on_are_reported_with_why(tmp_path: Path) -> None:
    path = tmp_path / "relay.conf"
    path.write_text(
        "ecstream_port = 1825\ngcm_dry_run = true\napn_expiry = yes\n"
        'domainkeys = enabled\nexclude_vctx = ( "a" )\n'
    )
    done = relay("config", "check", str(path))
    assert done.returncode == 0, done.stderr
    for line, option, why in (
        (1, "ecstream_port", "proprietary protocol"),
        (2, "gcm_dry_run", "retired service"),
        (3, "apn_expiry", "retired service"),
        (4, "domainkeys", "obsolete standard"),
        (5, "exclude_vctx", "Momentum internals"),
    ):
        expected = (
            f"{path}:{line}:1: {option}: accepted for compatibility but ignored: not supported"
        )
        found = [w for w in done.stderr.splitlines() if expected in w]
        assert len(found) == 1 and why in found[0], (option, done.stderr)
