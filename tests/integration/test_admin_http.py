"""The admin API over real HTTP(S) against a running relay: scopes (401/403/200), HTTPS,
/healthz and /readyz, injection over HTTP to a real sink, Idempotency-Key across a restart,
and the start-up refusals an operator sees."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import trustme

from relay.admin.client import request
from relay.config import ConfigError, loads
from relay.daemon import Daemon
from tests.integration.relay_harness import RelayFactory, RelayUnderTest, free_port
from tests.support.fixtures import DnsServerFactory, SinkFactory

ZONE = {"one.test": {"MX": ["10 mx.one.test."]}, "mx.one.test": {"A": ["127.0.0.10"]}}


def config(port: int) -> str:
    return f"""
remote_smtp_port = {port}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
binding_group "other" {{
  binding "o1" {{ bind_address = 127.0.0.3 }}
}}
"""


async def call(
    relay: RelayUnderTest,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    cafile: str | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """(status, decoded body, headers), for error answers too."""
    run = functools.partial(
        request, relay.admin_url, method, path, body, token=token, headers=headers, cafile=cafile
    )
    try:
        return 200, await asyncio.to_thread(run), {}
    except urllib.error.HTTPError as err:
        raw = err.read().decode()
        return err.code, json.loads(raw), dict(err.headers)


async def inject(relay: RelayUnderTest, body: Any, **kwargs: Any) -> tuple[int, Any]:
    """POST /api/v1/messages; `request` reads 201 as success too (status 200 here)."""
    kwargs.setdefault("token", relay.tokens["inject"])
    status, answer, _ = await call(relay, "POST", "/api/v1/messages", body, **kwargs)
    return (201 if status == 200 else status), answer


async def test_each_scope_gets_401_403_or_200(relay_factory: RelayFactory) -> None:
    relay = await relay_factory("", admin=True)
    tokens = relay.tokens
    message = {"from": "s@sender.test", "to": ["r@one.test"], "text": "hi"}
    cases = [  # (method, path, body, scope it needs)
        ("GET", "/api/v1/summary", None, "read"),
        ("POST", "/api/v1/messages", message, "inject"),
        ("POST", "/api/v1/flush", {}, "admin"),
    ]
    for method, path, body, needed in cases:
        status, answer, headers = await call(relay, method, path, body)
        assert status == 401, path
        assert answer == {"error": "missing Authorization: Bearer token"}
        assert headers["WWW-Authenticate"].startswith("Bearer")
        status, answer, _ = await call(relay, method, path, body, token="x" * 40)
        assert (status, answer["error"]) == (401, "unknown or malformed bearer token")
        for scope, token in tokens.items():
            status, answer, _ = await call(relay, method, path, body, token=token)
            if scope == needed or scope == "admin":
                assert status == 200, (path, scope, answer)
            else:
                assert status == 403, (path, scope)
                assert answer["error"] == (
                    f"token '{scope}-client' has scope '{scope}', needs '{needed}'"
                )
    # Open without a token: /metrics, /healthz, /readyz.
    assert "relay_events" in await asyncio.to_thread(request, relay.admin_url, "GET", "/metrics")
    assert (await call(relay, "GET", "/healthz"))[1]["status"] == "ok"
    assert (await call(relay, "GET", "/readyz"))[1] == {"ready": True}
    status, answer, _ = await call(relay, "GET", "/api/v1/nothing", token=tokens["read"])
    assert (status, answer) == (404, {"error": "no such endpoint"})


async def test_without_a_token_file_only_reads_answer(relay_factory: RelayFactory) -> None:
    relay = await relay_factory("", admin=True, admin_tokens=False)
    assert (await call(relay, "GET", "/api/v1/summary"))[0] == 200
    for path, body in (("/api/v1/flush", {}), ("/api/v1/reload", {}), ("/api/v1/messages", {})):
        status, answer, _ = await call(relay, "POST", path, body, token="anything-at-all-0000")
        assert status == 401
        assert "admin_token_file" in answer["error"]
    code, _, err = await cli(relay, "flush")
    assert code == 1
    assert err.count("\n") == 1 and "401" in err and "admin_token_file" in err


async def test_metrics_require_token(relay_factory: RelayFactory) -> None:
    relay = await relay_factory("", admin=True, admin_extra="metrics_require_token = true\n")
    status, _, _ = await call(relay, "GET", "/metrics")
    assert status == 401
    text = await asyncio.to_thread(
        functools.partial(request, relay.admin_url, "GET", "/metrics", token=relay.tokens["read"])
    )
    assert "relay_events" in text
    assert (await call(relay, "GET", "/healthz"))[0] == 200  # stays open


async def test_https(relay_factory: RelayFactory, tls_ca: trustme.CA, tmp_path: Path) -> None:
    cert = tls_ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls_ca.cert_pem.write_to_path(str(ca_file))
    relay = await relay_factory(
        "",
        admin=True,
        admin_extra=f'admin_tls_certificate = "{cert_file}"\nadmin_tls_key = "{key_file}"\n',
    )
    assert relay.admin_url.startswith("https://")
    status, answer, _ = await call(
        relay, "GET", "/api/v1/summary", token=relay.tokens["read"], cafile=str(ca_file)
    )
    assert status == 200 and answer["spool"]["messages"] == 0
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        await call(relay, "GET", "/healthz")  # the system's CAs do not know this one
    code, out, _ = await cli(relay, "--cafile", str(ca_file), "--json", "ready")
    assert code == 0 and json.loads(out) == {"ready": True}


async def cli(relay: RelayUnderTest, *args: str, token: bool = True) -> tuple[int, str, str]:
    extra = ["--token-file", str(relay.token_file)] if token and relay.token_file else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.cli",
        "admin",
        "--url",
        relay.admin_url,
        *extra,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_errors_are_one_line(relay_factory: RelayFactory) -> None:
    relay = await relay_factory("", admin=True)
    code, _, err = await cli(relay, "flush", token=False)
    assert code == 1
    assert err == (
        "error: 401: missing Authorization: Bearer token (no token given: use --token-file "
        "or set $RELAY_ADMIN_TOKEN_FILE / $RELAY_ADMIN_TOKEN)\n"
    )
    code, out, _ = await cli(relay, "flush")
    assert (code, out) == (0, "flushed  0\n")
    nobody = RelayUnderTest(relay.daemon, relay.port, relay.directory)
    nobody.admin_url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await cli(nobody, "summary", token=False)
    assert code == 1
    assert err == (
        f"error: no relay daemon answers at {nobody.admin_url} (is it running, with "
        "admin_listen set to that address?)\n"
    )


async def test_http_injection_reaches_the_sink(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(config(smtp_sink.port), dns=dns, admin=True)
    content = "From: s@sender.test\nTo: r1@one.test\nSubject: whole\n\nline one\n.dot line\n"
    status, answer = await inject(
        relay,
        {"from": "s@sender.test", "to": ["r1@one.test", "r2@one.test"], "content": content},
    )
    assert status == 201, answer
    assert set(answer) == {"id", "recipients"} and answer["recipients"] == 2
    status, built = await inject(
        relay,
        {
            "from": "s@sender.test",
            "to": ["r3@one.test"],
            "subject": "built",
            "text": "plain part",
            "html": "<p>html part</p>",
            "headers": {"X-Campaign-Tag": "spring"},
            "binding_group": "other",
        },
    )
    assert status == 201, built
    await relay.wait(lambda: len(sink.messages) == 2)
    whole = next(m for m in sink.messages if "r1@one.test" in m.rcpt_tos)
    assert sorted(whole.rcpt_tos) == ["r1@one.test", "r2@one.test"]
    assert whole.mail_from == "s@sender.test" and whole.peer_ip == "127.0.0.1"  # default
    assert b"\r\nSubject: whole\r\n" in whole.content
    assert whole.content.endswith(b"\r\n\r\nline one\r\n.dot line\r\n")
    assert b"Received: from unknown ([127.0.0.1])" in whole.content  # the trace, as SMTP's
    assert b"\r\nMessage-ID: <" in whole.content  # added when missing, as over SMTP
    mime = next(m for m in sink.messages if "r3@one.test" in m.rcpt_tos)
    assert mime.peer_ip == "127.0.0.3"  # binding_group "other"
    assert b"X-Campaign-Tag: spring" in mime.content
    assert b"multipart/alternative" in mime.content and b"<p>html part</p>" in mime.content
    received = relay.events("reception")
    assert {r["message_id"] for r in received} == {answer["id"], built["id"]}


async def test_http_injection_refusals_name_the_field(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(
        config(9) + "esmtp_listener { max_recipients_per_message = 2 }\n", admin=True
    )
    good = {"from": "s@sender.test", "to": ["r@one.test"], "text": "hi"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"to": ["r@one.test"], "text": "x"}, 400, "from"),
        ({**good, "to": []}, 400, "to"),
        ({**good, "to": ["no-at-sign"]}, 400, "to[0]"),
        ({**good, "to": ["a@one.test", "b@one.test", "c@one.test"]}, 422, "to"),
        ({**good, "binding_group": "nope"}, 422, "binding_group"),
        ({**good, "binding": "b1", "binding_group": "other"}, 422, "binding"),
        ({**good, "colour": "red"}, 400, "colour"),
        ({**good, "tenant": "t" * 200}, 422, "tenant"),
        ({**good, "campaign": 7}, 400, "campaign"),
        ({**good, "content": "x"}, 400, "subject" if "subject" in good else "text"),
        ({**good, "headers": {"X-A": "one\r\nBcc: evil@x.test"}}, 400, "headers"),
        ({"from": "s@sender.test", "to": ["r@one.test"], "content": "a\0b\n"}, 422, "content"),
        ({"from": "s@sender.test", "to": ["r@one.test"], "content": "x" * 1200}, 400, "content"),
        (
            {"from": "s@sender.test", "to": ["r@one.test"], "content": "X-Binding: zz\n\nx"},
            422,
            "content",
        ),
    ]
    for body, status, field in cases:
        got, answer = await inject(relay, body)
        assert (got, answer.get("field")) == (status, field), (body, answer)
        assert answer["error"]
    status, answer, _ = await call(
        relay, "POST", "/api/v1/messages", None, token=relay.tokens["inject"]
    )
    assert status == 400 and answer["field"] == "from"
    assert relay.daemon.spool is not None and relay.daemon.spool.statistics().messages == 0


async def test_http_injection_size_limit(relay_factory: RelayFactory) -> None:
    relay = await relay_factory("max_message_size = 2000\n", admin=True)
    body = {"from": "s@sender.test", "to": ["r@one.test"], "text": "y" * 60 + "\n"}
    assert (await inject(relay, body))[0] == 201
    status, answer = await inject(relay, {**body, "text": ("y" * 60 + "\n") * 60})
    assert status == 413 and answer["field"] == "content" and "5.3.4" in answer["error"]
    # A body past what any allowed message needs is not even read: 413 too.
    status, answer = await inject(relay, {**body, "text": "z" * (2 << 20)})
    assert status == 413 and answer["error"].startswith("request body over")


async def test_reload_reads_the_token_file_again(relay_factory: RelayFactory) -> None:
    relay = await relay_factory("", admin=True)
    assert relay.token_file is not None
    old = relay.tokens["admin"]
    new = "rotated-admin-token-0123456789"
    relay.token_file.write_text(f"ops:admin:{new}\n")
    assert (await call(relay, "POST", "/api/v1/reload", {}, token=old))[0] == 200
    assert (await call(relay, "POST", "/api/v1/flush", {}, token=old))[0] == 401
    assert (await call(relay, "POST", "/api/v1/flush", {}, token=new))[0] == 200
    relay.token_file.write_text("broken\n")
    status, _, _ = await call(relay, "POST", "/api/v1/reload", {}, token=new)
    assert status == 200  # the configuration reloads; the bad file is logged, tokens stay
    assert (await call(relay, "POST", "/api/v1/flush", {}, token=new))[0] == 200


async def test_idempotency_key_holds_across_a_restart(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(config(smtp_sink.port), dns=dns, admin=True)
    body = {"from": "s@sender.test", "to": ["r@one.test"], "text": "once"}
    key = {"Idempotency-Key": "order-17"}
    first = await inject(relay, body, headers=key)
    assert first[0] == 201
    # The same key at once, twice concurrently: the first answer, nothing queued again.
    again = await asyncio.gather(*(inject(relay, body, headers=key) for _ in range(2)))
    assert again == [first, first]
    relay = await relay_factory.restart(relay)
    assert await inject(relay, body, headers=key) == first
    status, answer = await inject(relay, {**body, "text": "other"}, headers=key)
    assert status == 422 and "different request" in answer["error"]
    # Keys are per token: the admin token's "order-17" is another key.
    other = await inject(relay, body, headers=key, token=relay.tokens["admin"])
    assert other[0] == 201 and other[1]["id"] != first[1]["id"]
    await relay.wait(lambda: len(sink.messages) == 2)
    await asyncio.sleep(0.3)
    assert len(sink.messages) == 2


async def test_healthz_reports_a_spool_it_cannot_write(relay_factory: RelayFactory) -> None:
    relay = await relay_factory("", admin=True)
    spool = relay.directory / "spool"
    spool.chmod(0o500)
    try:
        status, answer, _ = await call(relay, "GET", "/healthz")
    finally:
        spool.chmod(0o700)
    import os

    if os.geteuid() == 0:  # root writes anyway: the check still ran
        assert status == 200 and answer["spool_writable"] is True
    else:
        assert status == 503 and answer["spool_writable"] is False
    assert answer["listeners"] == [f"127.0.0.1:{relay.port}"]


BASE = 'spoolbase = "{spool}"\nevent_log = "{spool}/events.jsonl"\n'


def start_refusal(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "relay.conf"
    path.write_text(BASE.format(spool=tmp_path / "spool") + text)
    with pytest.raises(ConfigError) as caught:
        daemon = Daemon(loads(path.read_text(), str(path)), str(path))
        asyncio.run(daemon.start())
    return caught.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'admin_listen = "0.0.0.0:2580"\n',
            "relay.conf:3:1: admin_listen: 0.0.0.0:2580 is not a loopback address and "
            "admin_token_file is not set (set admin_token_file (NAME:SCOPE:TOKEN lines) or "
            "listen on 127.0.0.1)",
        ),
        (
            'admin_listen = "127.0.0.1:2580"\nadmin_tls_certificate = "c.pem"\n',
            "relay.conf:4:1: admin_tls_certificate: admin_tls_certificate is set but "
            "admin_tls_key is not (set both for HTTPS, or neither)",
        ),
        (
            "metrics_require_token = true\n",
            "relay.conf:3:1: metrics_require_token: metrics_require_token needs "
            "admin_token_file (no token could open /metrics)",
        ),
    ],
)
def test_refused_configurations(tmp_path: Path, text: str, expected: str) -> None:
    (problem,) = start_refusal(tmp_path, text).problems
    assert str(problem).endswith(expected)


def test_refused_token_files(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    conf = f'admin_listen = "127.0.0.1:{free_port()}"\nadmin_token_file = "{tokens}"\n'
    for content, message in (
        ("ok:admin:0123456789abcdef0123\nbad line\n", "2:0: admin_token_file: expected"),
        ("a:root:0123456789abcdef0123\n", "1:0: admin_token_file: scope 'root' is not one of"),
        ("a:read:short\n", "1:0: admin_token_file: token 'a' is shorter than 16 characters"),
        ("# only a comment\n", "0:0: admin_token_file: no tokens in the file"),
    ):
        tokens.write_text(content)
        (problem,) = start_refusal(tmp_path, conf).problems
        assert str(problem).startswith(f"{tokens}:{message}"), str(problem)
    tokens.unlink()
    (problem,) = start_refusal(tmp_path, conf).problems
    assert "cannot read the token file" in str(problem)


async def test_config_check_names_the_option(tmp_path: Path) -> None:
    path = tmp_path / "relay.conf"
    path.write_text('admin_listen = "192.0.2.1:2580"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.cli",
        "config",
        "check",
        str(path),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert f"error: {path}:1:1: admin_listen: 192.0.2.1:2580 is not a loopback" in err.decode()
