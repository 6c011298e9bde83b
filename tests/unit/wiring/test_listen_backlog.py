"""`listen_backlog` reaches the listening socket (it was registered but never read: the
backlog was a fixed 512)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relay.config import loads
from relay.inject import start_listeners
from relay.wiring import compile_settings
from tests.integration.inject_helpers import DirSpool
from tests.integration.relay_harness import free_port

CONFIG = """
esmtp_listener {{
  listen "127.0.0.1:{0}" {{ listen_backlog = 77 }}
  listen "127.0.0.2:{1}" {{ }}
}}
"""


def config() -> str:
    return CONFIG.format(free_port("127.0.0.1"), free_port("127.0.0.2"))


def test_listen_backlog_is_read_per_listen_stanza() -> None:
    listeners = compile_settings(loads(config())).inject.listeners
    assert [listener.backlog for listener in listeners] == [77, 500]  # 500: Momentum's default


async def test_listen_backlog_is_the_sockets_backlog(tmp_path: Path) -> None:
    settings = compile_settings(loads(config())).inject
    listeners = await start_listeners(settings, DirSpool(tmp_path))
    try:
        bound = {host: port for listener in listeners.bound for host, port in listener.sockets}
        ss = await asyncio.create_subprocess_exec("ss", "-ltnH", stdout=asyncio.subprocess.PIPE)
        out = (await ss.communicate())[0].decode()
        queues = {}
        for row in out.splitlines():  # State Recv-Q Send-Q Local:Port Peer:Port
            fields = row.split()
            queues[fields[3]] = int(fields[2])  # a listening socket's Send-Q is its backlog
        assert queues[f"127.0.0.1:{bound['127.0.0.1']}"] == 77
        assert queues[f"127.0.0.2:{bound['127.0.0.2']}"] == 500
    finally:
        await listeners.close(grace=0.1)
