"""A real DNS server on loopback (UDP and TCP) serving a dict zone, for tests.

    zone = {
        "example.test": {"MX": ["10 mx1.example.test.", "20 mx2.example.test."]},
        "mx1.example.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
        "null.test": {"MX": ["0 ."]},                 # null MX
        "broken.test": SERVFAIL,                        # every query: SERVFAIL
        "slow.test": TIMEOUT,                           # every query: no answer
        "short.test": {"A": ["127.0.0.9"], "ttl": 5},   # TTL for this name's records
        "flaky.test": {"MX": SERVFAIL, "A": ["127.0.0.9"]},  # per type, too
        "signed.test": {"MX": ["10 mx.signed.test."], "ad": True},  # answers set AD
    }
    async with DnsServer(zone, tmp_path) as dns:       # 127.0.0.1:<free port>
        resolver = dns.resolver()                       # relay DnsResolver for this server
        dns.resolv_conf, dns.port, dns.queries          # path, port, [(name, type), ...]

Records are in zone-file text form (dnspython parses them). A name missing from the
zone answers NXDOMAIN; a name present without the queried type answers NOERROR/NODATA.
The zone may be changed while the server runs (`dns.zone[name] = ...`). `"ad": True`
marks a name's answers (and its NXDOMAIN/NODATA) as DNSSEC-validated: the AD flag is set,
as a validating resolver would (the server signs nothing; relay trusts its resolver).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from relay.deliver.dns import DnsResolver

SERVFAIL = "SERVFAIL"
TIMEOUT = "TIMEOUT"
DEFAULT_TTL = 300

Zone = dict[str, Any]


class DnsServer:
    def __init__(self, zone: Zone, directory: Path | str, host: str = "127.0.0.1") -> None:
        self.zone: Zone = {k.rstrip(".").lower(): v for k, v in zone.items()}
        self.directory = Path(directory)
        self.host = host
        self.port = 0
        self.resolv_conf = str(self.directory / "resolv.conf")
        Path(self.resolv_conf).write_text(
            f"nameserver {host}\noptions timeout:1 attempts:1\n", encoding="ascii"
        )
        self.queries: list[tuple[str, str]] = []
        self.delay = 0.0  # seconds to wait before answering (tests of coalescing)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        # Bind UDP first on a free port, then TCP on the same port.
        for _ in range(20):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, 0)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                transport.close()
                continue
            self._udp, self.port = transport, port
            break
        else:
            raise RuntimeError("no free port for the test DNS server")
        return self

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    async def __aenter__(self) -> DnsServer:
        return await self.start()

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def resolver(self, **kwargs: Any) -> DnsResolver:
        """A relay DnsResolver that asks only this server (1 s timeout unless given)."""
        kwargs.setdefault("timeout", 1.0)
        return DnsResolver(self.resolv_conf, port=self.port, **kwargs)

    # ---- answering ----------------------------------------------------------------------

    def answer(self, wire: bytes) -> bytes | None:
        """The reply to one query in wire format, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        entry = self.zone.get(name)
        if entry == TIMEOUT:
            return None
        if isinstance(entry, dict) and entry.get("ad"):
            response.flags |= dns.flags.AD
        if entry == SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif entry is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            records = entry.get(rdtype, [])
            if records in (SERVFAIL, TIMEOUT):
                if records == TIMEOUT:
                    return None
                response.set_rcode(dns.rcode.SERVFAIL)
            elif records:
                rrset = dns.rrset.from_text_list(
                    question.name, int(entry.get("ttl", DEFAULT_TTL)), "IN", rdtype, records
                )
                response.answer.append(rrset)
        return response.to_wire()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                wire = await reader.readexactly(length)
                if self.delay:
                    await asyncio.sleep(self.delay)
                reply = self.answer(wire)
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.server.delay:
            asyncio.get_running_loop().call_later(self.server.delay, self._reply, data, addr)
        else:
            self._reply(data, addr)

    def _reply(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.server.answer(data)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)
