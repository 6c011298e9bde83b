"""Containers for the end-to-end tests: the docker CLI in subprocesses, every container and
volume a test makes removed after it (by id), a sink container's journal read from the host.

All containers use the host network (dockerd runs without a bridge); every address is on
127.0.0.0/8 (these tests use 127.0.0.211-219) and every port is a free one picked here.
"""

from __future__ import annotations

import json
import os
import secrets
import smtplib
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

IMAGE = os.environ.get("RELAY_IMAGE", "relay:local")
RELAY_UID = 10001  # docker/Dockerfile's RELAY_UID
DOCKER_TIMEOUT = 120.0


class DockerError(RuntimeError):
    pass


def docker(*args: str, timeout: float = DOCKER_TIMEOUT, check: bool = True) -> str:
    """Run `docker ARGS`; its stdout (stripped). Raises DockerError with stderr if it fails."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise DockerError(f"docker {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return done.stdout.strip()


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(what: str, condition: Callable[[], Any], within: float, step: float = 0.2) -> Any:
    """Poll `condition` until it is truthy (its value is returned) or `within` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(step)


def greets(host: str, port: int) -> bool:
    """Something on host:port answers with an SMTP 220."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            return sock.recv(512).startswith(b"220")
    except OSError:
        return False


@dataclass
class Docker:
    """What one test started: removed (containers with their anonymous volumes, then the
    named volumes) by `cleanup`, whatever state they are in."""

    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def volume(self) -> str:
        name = f"relay-test-{secrets.token_hex(6)}"
        docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def run(self, *args: str) -> str:
        """`docker run -d --network host ARGS`: the container id."""
        cid = docker("run", "-d", "--network", "host", *args)
        self.containers.append(cid)
        return cid

    def cleanup(self) -> None:
        for cid in reversed(self.containers):
            docker("rm", "-f", "-v", cid, check=False)
        for name in self.volumes:
            docker("volume", "rm", "-f", name, check=False)


def state(cid: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(docker("inspect", "-f", "{{json .State}}", cid))
    return found


def health(cid: str) -> str:
    return str(state(cid).get("Health", {}).get("Status", "none"))


class Sink:
    """A `relay sink` container recording into a host directory."""

    def __init__(self, env: Docker, directory: Path, host: str = "127.0.0.214") -> None:
        self.host = host
        self.port = free_port(host)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o777)  # the container's user (relay) writes here
        self.cid = env.run(
            "--no-healthcheck",
            "-v",
            f"{directory}:/sink",
            IMAGE,
            "sink",
            "--listen",
            f"{host}:{self.port}",
            "--dir",
            "/sink",
            "--quiet",
        )
        wait_for("the sink to listen", lambda: greets(host, self.port), 30)

    def entries(self) -> list[dict[str, Any]]:
        journal = self.directory / "messages.jsonl"
        if not journal.exists():
            return []
        lines = journal.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def by_message_id(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for entry in self.entries():
            found.setdefault(str(entry["message_id"]), []).append(entry)
        return found


RELAY_HOST = "127.0.0.211"
BINDINGS = {"a1": ("127.0.0.212", "a1.relay.test"), "a2": ("127.0.0.213", "a2.relay.test")}


@dataclass
class RelayContainer:
    """relay serving a test configuration from the image; two listeners, one per group."""

    env: Docker
    sink: Sink
    config_dir: Path
    volume: str = ""
    ports: tuple[int, int] = (0, 0)
    cid: str = ""

    def config(self, shutdown_timeout: float) -> str:
        # Names no path but the spoolbase: the event log's relative default must land in
        # the image's writable /var/log/relay.
        listen = "\n".join(
            f'  listen "{RELAY_HOST}:{port}" {{ binding_group = "g{n}" }}'
            for n, port in enumerate(self.ports, 1)
        )
        groups = "\n".join(
            f'binding_group "g{n}" {{\n'
            f'  binding "{name}" {{ bind_address = {address} ehlo_hostname = "{ehlo}" }}\n}}'
            for n, (name, (address, ehlo)) in enumerate(BINDINGS.items(), 1)
        )
        return (
            f'spoolbase = "/var/spool/relay"\n'
            f'hostname = "relay.docker.test"\n'
            f"shutdown_timeout = {shutdown_timeout:g}\n"
            f'gateway = "{self.sink.host}:{self.sink.port}"\n'
            f"max_outbound_connections = 4\n"
            f"retry_interval = 2\n"
            f"max_retry_interval = 4\n"
            f'esmtp_listener {{\n  relay_hosts = ( "127.0.0.0/8" )\n{listen}\n}}\n'
            f"{groups}\n"
        )

    def start(self, *, shutdown_timeout: float = 10, health_interval: str = "1s") -> str:
        if not self.volume:
            self.volume = self.env.volume()
            self.ports = (free_port(RELAY_HOST), free_port(RELAY_HOST))
            self.config_dir.mkdir(parents=True, exist_ok=True)
            self.config_dir.chmod(0o755)
            path = self.config_dir / "relay.conf"
            path.write_text(self.config(shutdown_timeout), encoding="utf-8")
            path.chmod(0o644)
        self.cid = self.env.run(
            "--stop-timeout",
            "60",
            "--health-interval",
            health_interval,
            "--health-start-period",
            "30s",
            "-v",
            f"{self.volume}:/var/spool/relay",
            "-v",
            f"{self.config_dir}:/etc/relay:ro",
            IMAGE,
        )
        for port in self.ports:
            wait_for(
                f"relay to listen on {RELAY_HOST}:{port}",
                lambda port=port: greets(RELAY_HOST, port) or self._exited(),
                60,
            )
        return self.cid

    def _exited(self) -> bool:
        if state(self.cid)["Running"]:
            return False
        logs = docker("logs", "--tail", "30", self.cid, check=False)
        raise AssertionError(f"relay container exited: {state(self.cid)}\n{logs}")

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["docker", "exec", self.cid, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise DockerError(f"docker exec {' '.join(args)}: {done.returncode} {done.stderr}")
        return done


def message(seq: int, *, binding: str | None = None, tag: str = "t") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@relay.test"
    msg["To"] = f"rcpt{seq}@example.test"
    msg["Subject"] = f"docker test {tag} {seq}"
    msg["Message-ID"] = f"<{tag}-{seq}@docker.relay.test>"
    if binding is not None:
        msg["X-Binding"] = binding
    msg.set_content(f"message {seq}\n")
    return msg


def send(port: int, msg: EmailMessage, host: str = RELAY_HOST) -> None:
    with smtplib.SMTP(host, port, timeout=30, local_hostname="injector.test") as smtp:
        smtp.send_message(msg)
