"""Relay nodes as real processes (`relay serve`) sharing one redis-server, for the cluster
tests. Each node has its own spool and listener; all deliver to one sink through `gateway`.

    nodes = ClusterNodes(tmp_path, redis_server.url, sink_port)
    n1 = await nodes.start("n1", domain_options='cluster_outbound_throttle_messages = "10/1"')
    await n1.send(20)                      # 20 messages to r@x.test through n1's listener
    n1.kill()                              # SIGKILL
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import aiosmtplib

from tests.integration.relay_harness import free_port

ADMIN_TOKEN = "cluster-test-admin-token"  # every node's admin_token_file holds it (scope admin)
AUTHORIZATION = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Node:
    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int, admin: int):
        self.name = name
        self.process = process
        self.port = port
        self.admin_url = f"http://127.0.0.1:{admin}"

    async def send(self, count: int, domain: str = "x.test", local: str = "r") -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, timeout=10) as smtp:
            for index in range(count):
                msg = EmailMessage()
                msg["From"] = "a@sender.test"
                msg["To"] = f"{local}{index}@{domain}"
                msg["Subject"] = f"{self.name} {index}"
                msg.set_content("cluster test\n")
                await smtp.send_message(msg)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "relay.cli", "serve", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


class ClusterNodes:
    def __init__(self, directory: Path, redis_url: str, sink_port: int) -> None:
        self.directory = directory
        self.redis_url = redis_url
        self.sink_port = sink_port
        self.nodes: list[Node] = []

    async def start(
        self,
        name: str,
        domain_options: str,
        cluster_options: str = "",
        *,
        port: int | None = None,
        listen_options: str = "",
        global_options: str = "",
    ) -> Node:
        folder = self.directory / name
        folder.mkdir()
        nowhere = folder / "resolv.conf"
        nowhere.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        port, admin = port or free_port(), free_port()
        tokens = folder / "tokens"
        tokens.write_text(f"ops:admin:{ADMIN_TOKEN}\n")
        text = f"""
hostname = "{name}.relay.test"
spoolbase = "{folder / "spool"}"
event_log = "{folder / "events.jsonl"}"
force_fsync = false
shutdown_timeout = 2
admin_listen = "127.0.0.1:{admin}"
admin_token_file = "{tokens}"
resolv_conf = "{nowhere}"
dns_port = 9
ehlo_hostname = "{name}.relay.test"
idle_timeout = 1
{global_options}
cluster {{
  redis_url = "{self.redis_url}"
  node_name = "{name}"
  key_prefix = "test:"
  heartbeat_interval = 0.2
  lease_period = 1
  redis_timeout = 0.3
  {cluster_options}
}}
esmtp_listener {{
  relay_hosts = ( "127.0.0.0/8" )
  listen "127.0.0.1:{port}" {{ {listen_options} }}
}}
domain "x.test" {{
  gateway = "127.0.0.1:{self.sink_port}"
  {domain_options}
}}
"""
        path = folder / "relay.conf"
        path.write_text(text)
        process = _spawn(path, folder / "relay.log")
        node = Node(name, process, port, admin)
        self.nodes.append(node)
        # Listening: its own admin API says so (with reuse_port, the shared address may
        # already answer through another node).
        deadline = time.monotonic() + 15
        async with aiohttp.ClientSession(headers=AUTHORIZATION) as session:
            while True:
                try:
                    async with session.get(node.admin_url + "/api/v1/summary") as reply:
                        if reply.status == 200 and (await reply.json())["listeners"]:
                            break
                except aiohttp.ClientError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"node {name} did not start:\n{(folder / 'relay.log').read_text()}"
                    )
                await asyncio.sleep(0.05)
        return node

    def events(self, name: str) -> str:
        path = self.directory / name / "events.jsonl"
        return path.read_text() if path.exists() else ""

    def log(self, name: str) -> str:
        return (self.directory / name / "relay.log").read_text()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()
