"""TLS session resumption on relay's listener: the server context is built once and issues
a session ticket, so a client's next connection resumes instead of a full handshake."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

from tests.integration.inject_helpers import DirSpool, make_settings, serving, tls_files


def _reply(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """One SMTP reply (all its lines)."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
        last = data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if data.endswith(b"\r\n") and last[3:4] == b" ":
            return data


def _starttls_twice(port: int, context: ssl.SSLContext) -> list[bool]:
    """Two connections, each with STARTTLS; the second offers the first one's session."""
    session: ssl.SSLSession | None = None
    reused = []
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            assert _reply(raw).startswith(b"220 ")
            raw.sendall(b"EHLO client.test\r\n")
            assert b"STARTTLS" in _reply(raw)
            raw.sendall(b"STARTTLS\r\n")
            assert _reply(raw).startswith(b"220 ")
            with context.wrap_socket(raw, server_hostname="relay.test", session=session) as tls:
                tls.sendall(b"EHLO client.test\r\n")
                assert _reply(tls).startswith(b"250-")  # the tickets came before it
                reused.append(tls.session_reused)
                session = tls.session
                tls.sendall(b"QUIT\r\n")
                assert _reply(tls).startswith(b"221 ")
    return reused


async def test_a_client_resumes_its_tls_session(tmp_path: Path) -> None:
    tls = tls_files(tmp_path)
    settings = make_settings(tls_certificate=tls.cert, tls_key=tls.key)
    async with serving(settings, DirSpool(tmp_path)) as (_, port):
        reused = await asyncio.to_thread(_starttls_twice, port, tls.client_context)
    assert reused == [False, True]
