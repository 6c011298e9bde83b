"""Steer each client address to one injection worker (classic BPF on the SO_REUSEPORT
group): simultaneous connections from one address meet in one worker, so the shared
per-address count (shared_counts) is never raced for them and admits exactly the limit.

The kernel runs the program for each new connection with the data at the transport
payload; the source address is read through SKF_NET_OFF (relative to the IP header). The
returned number indexes the group's sockets; an index at or above their count (a worker
not yet, or no longer, listening) makes the kernel pick by its own hash instead. When a
socket leaves the group the kernel moves the last one into its place, so after a worker
restarts addresses may map to other workers: the shared counts keep the limits exact
meanwhile.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct

log = logging.getLogger("relay.inject")

SO_ATTACH_REUSEPORT_CBPF = 51  # <asm-generic/socket.h>
SKF_NET_OFF = -0x100000
# classic BPF opcodes (<linux/filter.h>)
_LD_B_ABS = 0x30  # BPF_LD | BPF_B | BPF_ABS
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_RSH_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MUL_K = 0x24  # BPF_ALU | BPF_MUL | BPF_K
_MOD_K = 0x94  # BPF_ALU | BPF_MOD | BPF_K
_XOR_X = 0xAC  # BPF_ALU | BPF_XOR | BPF_X
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JA = 0x05  # BPF_JMP | BPF_JA
_TAX = 0x07  # BPF_MISC | BPF_TAX
_RET_A = 0x16  # BPF_RET | BPF_A
GOLDEN = 0x9E3779B1


class SteeringError(OSError):
    """The kernel refused the steering program."""


def _net(offset: int) -> int:
    return (SKF_NET_OFF + offset) & 0xFFFFFFFF


def program(workers: int) -> list[tuple[int, int, int, int]]:
    """The instructions (code, jt, jf, k): hash of the IPv4 or IPv6 source address,
    modulo `workers`."""
    if not 1 <= workers <= 0xFFFF:
        raise ValueError(f"workers must be 1..65535, not {workers}")
    head = [
        (_LD_B_ABS, 0, 0, _net(0)),  # version nibble
        (_RSH_K, 0, 0, 4),
        (_JEQ_K, 2, 0, 6),  # 6: skip the IPv4 load and the jump
        (_LD_W_ABS, 0, 0, _net(12)),  # IPv4 source
        (_JA, 0, 0, 10),  # over the IPv6 part
    ]
    ipv6 = [(_LD_W_ABS, 0, 0, _net(8))]  # source: 4 words xor-ed together
    for offset in (12, 16, 20):
        ipv6 += [(_TAX, 0, 0, 0), (_LD_W_ABS, 0, 0, _net(offset)), (_XOR_X, 0, 0, 0)]
    assert len(ipv6) == 10
    mix = [
        (_TAX, 0, 0, 0),
        (_RSH_K, 0, 0, 16),
        (_XOR_X, 0, 0, 0),  # a ^= a >> 16
        (_MUL_K, 0, 0, GOLDEN),
        (_RSH_K, 0, 0, 16),
        (_MOD_K, 0, 0, workers),
        (_RET_A, 0, 0, 0),
    ]
    return head + ipv6 + mix


def run(instructions: list[tuple[int, int, int, int]], packet: bytes) -> int:
    """Interpret `instructions` on an IP packet (loads relative to its start): the subset
    `program` uses, for testing it without a kernel."""
    a = x = 0
    pc = 0
    while True:
        code, jt, jf, k = instructions[pc]
        pc += 1
        if code in (_LD_B_ABS, _LD_W_ABS):
            offset = k - (SKF_NET_OFF & 0xFFFFFFFF)
            size = 1 if code == _LD_B_ABS else 4
            a = int.from_bytes(packet[offset : offset + size], "big")
        elif code == _RSH_K:
            a >>= k
        elif code == _MUL_K:
            a = (a * k) & 0xFFFFFFFF
        elif code == _MOD_K:
            a %= k
        elif code == _XOR_X:
            a ^= x
        elif code == _TAX:
            x = a
        elif code == _JEQ_K:
            pc += jt if a == k else jf
        elif code == _JA:
            pc += k
        elif code == _RET_A:
            return a
        else:
            raise ValueError(f"opcode {code:#x} not interpreted")


def attach(sock: socket.socket, workers: int) -> None:
    """Attach the steering program to `sock`'s SO_REUSEPORT group (it replaces the
    group's program: every worker attaches the same one). SteeringError if refused."""
    instructions = program(workers)
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in instructions)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("@HP", len(instructions), ctypes.addressof(buffer))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as error:
        raise SteeringError(
            error.errno,
            f"the kernel refused the SO_ATTACH_REUSEPORT_CBPF program: {error.strerror}",
        ) from error
