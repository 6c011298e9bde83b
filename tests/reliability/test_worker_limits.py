"""Connection limits with injection_workers = 2 in a real `relay serve`: the per-address
limit and a listener's max_connections hold over both worker processes, also after one
worker is killed with SIGKILL and restarted, and over IPv6 [::1]."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.inject.steering import program, run
from tests.integration.relay_harness import free_port
from tests.reliability.abuse_support import (
    LISTENER_CAP,
    PER_IP_CAP,
    STEP,
    Client,
    RelayProcess,
    many,
)

V6_PORT = free_port()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = _has_ipv6_loopback()


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    listen = f'  listen "[::1]:{V6_PORT}" {{ }}\n' if IPV6 else ""
    with RelayProcess.start(
        tmp_path_factory.mktemp("workers"), top="injection_workers = 2", listen=listen
    ) as process:
        _wait_workers(process, 2)
        yield process


def _children(relay: RelayProcess) -> list[int]:
    path = Path(f"/proc/{relay.proc.pid}/task/{relay.proc.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def _wait_workers(relay: RelayProcess, count: int, within: float = 30.0) -> list[int]:
    """Until `count` workers run and every one listens (each accepted socket shows)."""
    deadline = time.monotonic() + within
    while True:
        pids = _children(relay)
        if len(pids) == count and all(_listens(pid) for pid in pids):
            return pids
        assert time.monotonic() < deadline, f"workers {pids}: {relay.log()}"
        time.sleep(0.1)


def _listens(pid: int) -> bool:
    """Process `pid` has the TCP listening sockets of all three listeners."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                listening.add(f"socket:[{fields[9]}]")
    return len(inodes & listening) >= (3 if IPV6 else 2)


async def first_lines(clients: list[Client], within: float = 5.0) -> list[str]:
    async def first(client: Client) -> str:
        try:
            return await client.reply(within)
        except (TimeoutError, ConnectionError):
            return "<no reply>"

    return list(await asyncio.gather(*(first(client) for client in clients)))


async def burst_from_one_address(port: int, source: str = "127.0.0.1") -> list[str]:
    async with many(port, 150, [source]) as clients:
        answers = await first_lines(clients)
        codes = [a[:3] for a in answers]
        assert codes.count("220") == PER_IP_CAP, sorted(set(answers))
        assert codes.count("421") == 150 - PER_IP_CAP, sorted(set(answers))
        assert {a for a in answers if a[:3] == "421"} == {
            "421 4.7.0 relay.test Too many connections from your address, try again later"
        }
    await asyncio.sleep(0.3)  # the closes reach relay
    return answers


async def flood_the_capped_listener(port: int) -> None:
    sources = [f"127.0.0.{50 + n}" for n in range(12)]  # both workers get some
    async with many(port, 120, sources) as clients:
        answers = await first_lines(clients)
        codes = [a[:3] for a in answers]
        assert codes.count("220") == LISTENER_CAP, sorted(set(answers))
        assert codes.count("421") == 120 - LISTENER_CAP, sorted(set(answers))
        assert {a for a in answers if a[:3] == "421"} == {
            "421 4.7.0 relay.test Too many connections, try again later"
        }
    await asyncio.sleep(0.3)


async def test_the_per_address_limit_holds_over_two_workers(relay: RelayProcess) -> None:
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):  # addresses of either worker
        await burst_from_one_address(relay.port, source)


async def test_a_listener_cap_holds_over_two_workers(relay: RelayProcess) -> None:
    for _ in range(2):
        await flood_the_capped_listener(relay.capped_port)


async def test_both_workers_take_connections(relay: RelayProcess) -> None:
    """The steering spreads addresses: 12 addresses do not all land on one worker (their
    sessions are seen in both workers' descriptor tables)."""
    pids = _children(relay)
    before = {pid: len(os.listdir(f"/proc/{pid}/fd")) for pid in pids}
    sources = [f"127.0.0.{50 + n}" for n in range(12)]
    async with many(relay.port, 48, sources) as clients:
        answers = await first_lines(clients)
        assert [a[:3] for a in answers] == ["220"] * 48
        after = {pid: len(os.listdir(f"/proc/{pid}/fd")) for pid in pids}
        assert all(after[pid] > before[pid] for pid in pids), (before, after)
    await asyncio.sleep(0.3)


async def test_a_killed_worker_leaves_no_counts_behind(relay: RelayProcess) -> None:
    """Connections held by a worker killed with SIGKILL do not count once it is gone and
    restarted: the listener cap and the per-address limit are exact again."""
    sources = [f"127.0.0.{50 + n}" for n in range(12)]
    async with many(relay.capped_port, 40, sources) as clients:
        answers = await first_lines(clients)
        assert [a[:3] for a in answers] == ["220"] * 40
        pids = _children(relay)
        os.kill(pids[0], signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, pids[0])
        await asyncio.to_thread(_wait_workers, relay, 2)
    await asyncio.sleep(0.3)
    await flood_the_capped_listener(relay.capped_port)
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        await burst_from_one_address(relay.port, source)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + STEP
    while os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
        assert time.monotonic() < deadline, f"worker {pid} still there"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return "Z"


@pytest.mark.skipif(not IPV6, reason="no IPv6 loopback")
async def test_the_per_address_limit_holds_over_ipv6(relay: RelayProcess) -> None:
    async def connect() -> Client:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("::1", V6_PORT), STEP)
        return Client(reader, writer)

    clients = list(await asyncio.gather(*(connect() for _ in range(150))))
    try:
        answers = await first_lines(clients)
        codes = [a[:3] for a in answers]
        assert codes.count("220") == PER_IP_CAP, sorted(set(answers))
        assert codes.count("421") == 150 - PER_IP_CAP, sorted(set(answers))
    finally:
        for client in clients:
            client.close()


async def test_an_address_split_over_workers_after_a_restart_keeps_its_limit(
    relay: RelayProcess,
) -> None:
    """When a worker leaves the SO_REUSEPORT group the kernel moves the last socket into
    its place: after the restart an address is steered to the other worker while its old
    sessions are still open in the first. The limit still holds over both."""
    # An address the steering program sends to the group's second socket.
    source = next(
        s
        for s in (f"127.0.0.{n}" for n in range(100, 140))
        if run(program(2), _ipv4_header(s)) == 1
    )
    async with many(relay.port, 60, [source]) as held:
        assert [a[:3] for a in await first_lines(held)] == ["220"] * 60
        pids = _children(relay)
        holder = max(pids, key=_open_sockets)
        other = next(pid for pid in pids if pid != holder)
        os.kill(other, signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, other)
        restarted = next(p for p in await asyncio.to_thread(_wait_workers, relay, 2) if p != holder)
        before = _open_sockets(restarted)
        async with many(relay.port, 100, [source]) as burst:
            answers = await first_lines(burst)
            assert _open_sockets(restarted) > before  # steered to the new worker now
            codes = [a[:3] for a in answers]
            assert codes.count("220") == PER_IP_CAP - 60, sorted(set(answers))
            assert codes.count("421") == 100 - (PER_IP_CAP - 60), sorted(set(answers))
        for client in held:  # the old sessions still work
            assert (await client.command("NOOP")).startswith("250")
    await asyncio.sleep(0.3)
    await burst_from_one_address(relay.port, source)


def _ipv4_header(source: str) -> bytes:
    return bytes([0x45]) + bytes(11) + socket.inet_aton(source) + socket.inet_aton("127.0.0.1")


def _open_sockets(pid: int) -> int:
    try:
        return sum(
            os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            for fd in os.listdir(f"/proc/{pid}/fd")
        )
    except OSError:
        return 0
