"""opendkim stanzas compiled: keys found and loaded (%{d}, %{s}, dkim_domain, base_domain),
every key problem a config error with file, line and option, and the fallback chain of
opendkim_sign / dkim."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, loads
from relay.wiring import compile_settings
from relay.wiring.dkim import dkim_settings
from tests.support.dkim_tools import write_key


def keys(tmp_path: Path) -> Path:
    for domain in ("example.com", "other.org"):
        write_key(tmp_path / "keys" / domain / "s1.pem")
    write_key(tmp_path / "keys" / "ed.pem", "ed25519")
    return tmp_path / "keys"


def test_no_stanza_no_signing() -> None:
    assert dkim_settings(loads("spoolbase = x\n")) is None
    assert compile_settings(loads("spoolbase = x\n")).inject.dkim is None


def test_domains_from_key_files_dkim_domain_and_a_second_profile(tmp_path: Path) -> None:
    root = keys(tmp_path)
    config = loads(
        f"""
opendkim "rsa" {{
  header_canon = relaxed
  headerlist = ( "From", "To", "Subject", "X-Binding-Group", "DKIM-Signature" )
  oversign_headerlist = "from, reply-to"
  key = "{root}/%{{d}}/%{{s}}.pem"
  selector = "s1"
  lifetime = 2
  dkim_domain "Corp.Example.com" {{ base_domain = "example.com" body_canon = relaxed }}
}}
opendkim "ed" {{
  digest = "ed25519-sha256"
  key = "{root}/ed.pem"
  selector = "ed1"
  sign_condition = auth_user
}}
"""
    )
    dkim = compile_settings(config).inject.dkim
    assert dkim is not None
    rsa, ed = dkim.profiles
    assert sorted(rsa.domains) == ["corp.example.com", "example.com", "other.org"]
    corp = rsa.domains["corp.example.com"]
    assert (corp.domain, corp.selector, corp.body_canon, corp.header_canon) == (
        "example.com",
        "s1",
        "relaxed",
        "relaxed",
    )
    assert corp.key.path == f"{root}/example.com/s1.pem"
    assert rsa.domains["other.org"].body_canon == "simple"
    assert rsa.domains["other.org"].headers == ("from", "to", "subject")  # relay's own: never
    assert rsa.domains["other.org"].oversign == ("from", "reply-to")
    assert rsa.domains["other.org"].lifetime == 7200.0
    assert rsa.fallback is None and rsa.spec_for("nokey.test") is None
    assert ed.fallback is not None and ed.spec_for("anything.test") is ed.fallback
    assert ed.fallback.domain is None and ed.fallback.condition == "auth_user"
    assert ed.fallback.key.kind == "ed25519"


def test_default_headerlist_is_rfc_6376s(tmp_path: Path) -> None:
    root = keys(tmp_path)
    config = loads(
        f'opendkim "d" {{ key = "{root}/ed.pem" selector = s digest = ed25519-sha256\n'
        '  skip_headerlist = ( "list-id" "references" ) }\n'
    )
    dkim = dkim_settings(config)
    assert dkim is not None and dkim.profiles[0].fallback is not None
    headers = dkim.profiles[0].fallback.headers
    assert headers[:4] == ("from", "sender", "reply-to", "subject")
    assert "list-id" not in headers and "references" not in headers


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        dkim_settings(loads(text, "relay.conf"))
    return [str(problem) for problem in caught.value.problems]


def test_key_problems_name_file_line_and_option(tmp_path: Path) -> None:
    root = keys(tmp_path)
    (root / "bad.pem").write_text("not a key\n")
    found = errors(
        f'opendkim "a" {{\n  key = "{root}/missing.pem"\n  selector = s\n}}\n'
        f'opendkim "b" {{\n  selector = s\n  key = "{root}/bad.pem"\n}}\n'
        f'opendkim "c" {{\n  selector = s\n  digest = "ed25519-sha256"\n'
        f'  key = "{root}/example.com/s1.pem"\n}}\n'
        f'opendkim "d" {{\n  key = "{root}/%{{d}}/x.pem"\n  selector = s\n'
        f'  dkim_domain "new.test" {{ }}\n}}\n'
    )
    assert found[0].startswith(f"relay.conf:2:3: key: key file {root}/missing.pem does not exist")
    assert found[1].startswith(f"relay.conf:7:3: key: key file {root}/bad.pem is not a PEM")
    assert found[2].startswith("relay.conf:12:3: key: key file")
    assert "holds an rsa key but digest is ed25519-sha256" in found[2]
    assert found[3].startswith(f"relay.conf:15:3: key: key file {root}/new.test/x.pem does not")
    assert len(found) == 4


def test_stanza_problems(tmp_path: Path) -> None:
    root = keys(tmp_path)
    found = errors(
        'opendkim "nokey" { selector = s }\n'
        f'opendkim "nosel" {{ key = "{root}/ed.pem" digest = ed25519-sha256 }}\n'
        f'opendkim "nofrom" {{ key = "{root}/ed.pem" selector = s digest = ed25519-sha256\n'
        '  headerlist = ( "to" "subject" ) skip_headerlist = from }\n'
        'opendkim "sub" { dkim_domain "x.test" { selector = s } }\n'
    )
    assert found[0] == (
        'relay.conf:1:1: key: opendkim "nokey" has no key (set key = "/path/%{d}/%{s}.pem" '
        "and selector, or add dkim_domain stanzas)"
    )
    assert found[1].startswith('relay.conf:2:20: selector: opendkim "nosel" has a key but no')
    assert found[2].startswith("relay.conf:4:3: headerlist: ") and "must include From" in found[2]
    assert found[3].startswith("relay.conf:4:35: skip_headerlist: ")
    assert found[4].startswith('relay.conf:5:18: key: opendkim "sub" :: dkim_domain "x.test"')


def test_option_values_and_scopes_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        loads(
            'opendkim "a" {\n  digest = "rsa-sha1"\n  dkim_domain "x" { headerlist = from }\n}\n'
            'base_domain = "x"\n',
            "relay.conf",
        )
    text = [str(p) for p in caught.value.problems]
    assert text[0].startswith("relay.conf:2:3: digest: bad value 'rsa-sha1'")
    assert text[1].startswith("relay.conf:3:21: headerlist: not valid in the dkim_domain scope")
    assert text[2].startswith("relay.conf:5:1: base_domain: not valid in the global scope")


def test_opendkim_sign_and_dkim_along_the_fallback_chain(tmp_path: Path) -> None:
    root = keys(tmp_path)
    config = loads(
        f"""
opendkim "ed" {{ key = "{root}/ed.pem" selector = s digest = ed25519-sha256 }}
binding_group "quiet" {{
  opendkim_sign = false
  binding "loud" {{ opendkim_sign = true }}
  domain "signed.test" {{ opendkim_sign = true }}
}}
binding_group "off" {{ dkim = disabled }}
binding_group "on" {{ domain "unsigned.test" {{ dkim = disabled }} }}
"""
    )
    dkim = dkim_settings(config)
    assert dkim is not None
    wants = dkim.wants
    assert wants("default", None, "any.test")
    assert not wants("quiet", None, "any.test")
    assert wants("quiet", None, "signed.test")
    assert wants("quiet", "loud", "any.test")
    assert not wants("off", None, "any.test")
    assert wants("on", None, "any.test") and not wants("on", None, "unsigned.test")
    assert wants("on", None, "any.test")  # cached answers are the same


def test_names_that_go_into_the_signature_are_checked(tmp_path: Path) -> None:
    root = keys(tmp_path)
    found = errors(
        f'opendkim "a" {{\n  key = "{root}/ed.pem" digest = ed25519-sha256\n'
        '  selector = "sél"\n  headerlist = ( "from" "bäd" )\n'
        '  dkim_domain "x.test" { base_domain = "-x.test" }\n}\n'
    )
    assert found[0].startswith("relay.conf:3:3: selector: 'sél' is not a DNS name")
    assert found[1] == "relay.conf:4:3: headerlist: not a header field name: 'bäd'"
    assert found[2].startswith("relay.conf:5:26: base_domain: '-x.test' is not a DNS name")
