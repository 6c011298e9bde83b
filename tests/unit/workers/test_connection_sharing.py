"""The pure parts of the workers' shared connection limits: the steering program (run by
a small interpreter on real IP headers) and the count table (two workers' views of one
buffer)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

import pytest

from relay.inject import replies
from relay.inject.limits import ConnectionLimits
from relay.inject.shared_counts import (
    LISTENER_SLOTS,
    CountTable,
    CountTableFull,
    open_table,
    table_size,
    tables,
    zero_worker,
)
from relay.inject.steering import SteeringError, attach, program, run


def ipv4_packet(source: str) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 40, 0, 0, 64, 6, 0,
        ipaddress.IPv4Address(source).packed,
        ipaddress.IPv4Address("127.0.0.1").packed,
    )  # fmt: skip


def ipv6_packet(source: str) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, 20, 6, 64)
        + ipaddress.IPv6Address(source).packed
        + ipaddress.IPv6Address("::1").packed
    )


def test_one_address_always_gets_the_same_worker_and_addresses_spread() -> None:
    instructions = program(2)
    picks = {run(instructions, ipv4_packet(f"127.0.0.{n}")) for n in range(1, 41)}
    assert picks == {0, 1}
    assert run(instructions, ipv4_packet("10.1.2.3")) == run(instructions, ipv4_packet("10.1.2.3"))
    for workers in (1, 3, 4, 7):
        indexes = [run(program(workers), ipv4_packet(f"10.0.{n}.1")) for n in range(200)]
        assert set(indexes) == set(range(workers)), workers


def test_ipv6_sources_use_the_whole_address() -> None:
    instructions = program(4)
    picks = {run(instructions, ipv6_packet(f"2001:db8::{n:x}")) for n in range(64)}
    assert picks == {0, 1, 2, 3}
    high = {run(instructions, ipv6_packet(f"2001:db8:{n:x}::1")) for n in range(64)}
    assert high == {0, 1, 2, 3}  # addresses differing only in a high word spread too


def test_program_refuses_a_silly_worker_count() -> None:
    with pytest.raises(ValueError, match="workers must be"):
        program(0)


def test_the_kernel_takes_the_program() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        attach(sock, 2)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain:  # no SO_REUSEPORT
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        with pytest.raises(SteeringError, match="refused the SO_ATTACH_REUSEPORT_CBPF"):
            attach(plain, 2)


def test_the_listener_total_is_the_sum_over_workers() -> None:
    buffer = bytearray(table_size(2))
    first, second = tables(buffer, 2, 0)[0], tables(buffer, 2, 1)[0]
    for _ in range(3):
        assert first.claim("a:25", 4)
    assert second.claim("a:25", 4)
    assert not second.claim("a:25", 4)  # 5 > 4: taken back
    assert not first.claim("a:25", 4)
    assert first.total("a:25") == second.total("a:25") == 4
    assert second.claim("b:25", None)  # another listener, no limit: counted
    assert first.total("b:25") == 1
    first.release("a:25")
    assert second.claim("a:25", 4)
    assert second.total("a:25") == 4


def test_a_restarted_worker_starts_from_zero() -> None:
    buffer = bytearray(table_size(2))
    first, second = tables(buffer, 2, 0)[0], tables(buffer, 2, 1)[0]
    for _ in range(5):
        first.claim("a:25", None)
    second.claim("a:25", None)
    assert second.total("a:25") == 6
    tables(buffer, 2, 0)  # worker 0 again, after a SIGKILL
    assert second.total("a:25") == 1


def test_the_daemon_zeroes_a_dead_workers_row(tmp_path: Path) -> None:
    mapped = open_table(tmp_path, 2)
    first, second = tables(mapped, 2, 0), tables(mapped, 2, 1)
    for table in (*first, *second):
        table.claim("a", None)
    zero_worker(tmp_path, 2, 0)
    assert second[0].total("a") == second[1].total("a") == 1
    assert (tmp_path / "inject-connections").stat().st_size == table_size(2)


def test_too_many_listeners_is_an_error_not_a_wrong_count() -> None:
    table = tables(bytearray(table_size(1)), 1, 0)[0]
    for n in range(LISTENER_SLOTS):
        table.claim(f"127.0.0.1:{n}", None)
    assert all(table.total(f"127.0.0.1:{n}") == 1 for n in range(LISTENER_SLOTS))
    with pytest.raises(CountTableFull, match="more than 256 keys"):
        table.claim("127.0.0.1:9999", None)
    table.release("127.0.0.1:7")  # a slot freed is taken again
    assert table.claim("127.0.0.1:9999", None)
    assert table.total("127.0.0.1:9999") == 1


def test_slots_are_reused_and_emptied_and_lookups_stay_right() -> None:
    """Many keys come and go in a small row: every total stays exact (a model check)."""
    buffer = bytearray(2 * 8 * 16)
    one = CountTable(buffer, 2, 0, slots=8)
    two = CountTable(buffer, 2, 1, slots=8)
    model: dict[str, int] = {}
    names = [f"10.0.0.{n}" for n in range(12)]
    for step in range(800):
        name = names[(step * 7919) % len(names)]
        table = one if step % 3 else two
        if (step // 5) % 2 and table.total(name) > 0:
            before = table.total(name)
            table.release(name)
            if table.total(name) < before:
                model[name] -= 1
        else:
            try:
                table.claim(name, None)
                model[name] = model.get(name, 0) + 1
            except CountTableFull:
                pass
        for check in names:
            assert one.total(check) == two.total(check) == model.get(check, 0), step


def test_limits_with_the_table_count_the_listener_over_workers() -> None:
    buffer = bytearray(table_size(2))
    one = ConnectionLimits(per_ip=2, shared=tables(buffer, 2, 0))
    two = ConnectionLimits(per_ip=2, shared=tables(buffer, 2, 1))
    assert one.admit("l", 3, "10.0.0.1", "h") is None
    assert one.admit("l", 3, "10.0.0.1", "h") is None
    # per-IP refusal does not keep a listener count
    assert one.admit("l", 3, "10.0.0.1", "h") == replies.TOO_MANY_FROM_IP.format(host="h")
    assert two.admit("l", 3, "10.0.0.2", "h") is None
    assert two.admit("l", 3, "10.0.0.3", "h") == replies.TOO_MANY_CONNECTIONS.format(host="h")
    one.release("l", "10.0.0.1")
    assert two.admit("l", 3, "10.0.0.3", "h") is None


def test_limits_with_the_table_count_an_address_over_workers() -> None:
    """An address whose connections sit in two workers (the steering changed after a
    restart) still gets no more than its limit in all."""
    buffer = bytearray(table_size(2))
    one = ConnectionLimits(per_ip=3, shared=tables(buffer, 2, 0))
    two = ConnectionLimits(per_ip=3, shared=tables(buffer, 2, 1))
    assert one.admit("l", None, "10.0.0.1", "h") is None
    assert one.admit("l", None, "10.0.0.1", "h") is None
    assert two.admit("l", None, "10.0.0.1", "h") is None
    assert two.admit("l", None, "10.0.0.1", "h") == replies.TOO_MANY_FROM_IP.format(host="h")
    assert one.admit("l", None, "10.0.0.2", "h") is None  # another address
    one.release("l", "10.0.0.1")
    assert two.admit("l", None, "10.0.0.1", "h") is None


def test_a_worker_reading_another_worker_count_sees_the_same_rows(tmp_path: Path) -> None:
    """The layout does not depend on the worker count (a worker restarted after a reload
    may see another), and the file only grows: a mapping never loses its pages."""
    small = open_table(tmp_path, 2)
    first = tables(small, 2, 0)
    first[0].claim("l", None)
    first[1].claim("10.0.0.1", None)
    large = open_table(tmp_path, 3)
    third = tables(large, 3, 2)
    assert third[0].total("l") == 1 and third[1].total("10.0.0.1") == 1
    open_table(tmp_path, 1).close()
    assert (tmp_path / "inject-connections").stat().st_size == table_size(3)
    assert first[0].total("l") == 1
