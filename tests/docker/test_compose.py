"""docker/compose.yml: valid for docker-compose 1.29, and `up` shows the demo's mail going
from the injector through relay to the sink, from each binding's address and EHLO name, with
Redis up beside them."""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.harness import docker, greets, wait_for

COMPOSE_FILE = Path(__file__).parents[2] / "docker" / "compose.yml"


def compose(project: str, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["docker-compose", "-p", project, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)}: {done.returncode}: {done.stderr}")
    return done.stdout


@pytest.fixture
def project(image: str) -> Iterator[str]:
    name = f"relaytest{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        compose(name, "down", "--volumes", "--timeout", "30", check=False)
        label = f"label=com.docker.compose.project={name}"
        for cid in docker("ps", "-aq", "--filter", label).split():
            docker("rm", "-f", "-v", cid, check=False)
        for volume in docker("volume", "ls", "-q", "--filter", label).split():
            docker("volume", "rm", "-f", volume, check=False)


def test_compose_file_is_valid_for_docker_compose() -> None:
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = COMPOSE_FILE.read_text().splitlines()
    assert not any(line.startswith("version:") for line in lines)  # the Compose Specification


def test_compose_up_shows_mail_reaching_the_sink(project: str) -> None:
    if greets("127.0.0.20", 2525) or greets("127.0.0.30", 2525) or redis_ping("127.0.0.40", 6379):
        pytest.skip("something already serves the compose demo's addresses")
    compose(project, "up", "-d")  # builds relay-redis:local the first time

    def both_bindings() -> bool:
        logs = compose(project, "logs", "--no-color", "sink")
        return (
            logs.count("from 127.0.0.21 (EHLO tx.relay.test)") >= 3
            and logs.count("from 127.0.0.22 (EHLO news.relay.test)") >= 3
        )

    wait_for("the demo's 6 messages in the sink's log", both_bindings, 60, step=0.5)
    injector = compose(project, "ps", "-q", "inject").strip()
    wait_for(
        "the injector to exit",
        lambda: docker("inspect", "-f", "{{.State.Status}}", injector) == "exited",
        30,
    )
    assert docker("inspect", "-f", "{{.State.ExitCode}}", injector) == "0"
    wait_for("redis to answer PING", lambda: redis_ping("127.0.0.40", 6379), 30)


def redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64) == b"+PONG\r\n"
    except OSError:
        return False
