"""pytest fixtures over tests/support (registered in tests/conftest.py).

  async def test_x(dns_server, smtp_sink, tls_ca):
      dns = await dns_server({"x.test": {"MX": ["10 mx.x.test."]},
                              "mx.x.test": {"A": ["127.0.0.2"]}})
      sink = await smtp_sink("127.0.0.2")            # every sink of a test shares a port
      resolver = dns.resolver()
      ...

dns_server(zone)            -> started DnsServer (tests/support/dns_server.py), stopped after
smtp_sink(host, **kwargs)   -> started SmtpSink (tests/support/sinks.py); kwargs: script,
                               tls_context, hostname; `smtp_sink.port` is the shared port
tls_ca                      -> trustme.CA; `tls_ca_file` is its PEM path (for tls_ca)
sink_tls(name)              -> server SSLContext with a tls_ca certificate for `name`
redis_server                -> started RedisServer (tests/support/redis_server.py), killed after
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme

from tests.support.dns_server import DnsServer, Zone
from tests.support.redis_server import RedisServer
from tests.support.sinks import SmtpSink, server_tls_context


class DnsServerFactory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers: list[DnsServer] = []

    async def __call__(self, zone: Zone) -> DnsServer:
        folder = self.directory / f"dns{len(self.servers)}"
        folder.mkdir(exist_ok=True)
        server = await DnsServer(zone, folder).start()
        self.servers.append(server)
        return server


class SinkFactory:
    def __init__(self) -> None:
        self.port = 0
        self.sinks: list[SmtpSink] = []

    async def __call__(self, host: str = "127.0.0.1", **kwargs: Any) -> SmtpSink:
        sink = await SmtpSink(host, self.port, **kwargs).start()
        self.port = sink.port
        self.sinks.append(sink)
        return sink


@pytest_asyncio.fixture
async def dns_server(tmp_path: Path) -> AsyncIterator[DnsServerFactory]:
    factory = DnsServerFactory(tmp_path)
    yield factory
    for server in factory.servers:
        await server.stop()


@pytest_asyncio.fixture
async def smtp_sink() -> AsyncIterator[SinkFactory]:
    factory = SinkFactory()
    yield factory
    for sink in factory.sinks:
        await sink.stop()


@pytest.fixture
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_ca_file(tls_ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def sink_tls(tls_ca: trustme.CA) -> Callable[..., Any]:
    def make(*names: str) -> Any:
        return server_tls_context(tls_ca.issue_cert(*names))

    return make


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder).start()
    try:
        yield server
    finally:
        server.kill()
