"""Cluster rows of the benchmark (issue 16): end-to-end rate of 1 node vs 2 nodes sharing one
Redis and one listening address (reuse_port), and the cost of a cluster throttle whose limit
is never reached (target: at least 0.9 of the rate without it). Same run, same machine.

    python -m tests.bench.cluster [--messages 2000] [--sessions 10] [--rounds 2] [--timeout 60]
                                  [--out result.json]

Every process is real: redis-server, the bench sink, `relay serve` nodes, the bench injector
(tests/bench/inject.py) sending to the shared address. Rate = messages / (last arrival at the
sink - injection start). Bounded: each run stops after --timeout seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.run import ROOT, spawn, stop
from tests.integration.relay_harness import free_port
from tests.support.redis_server import RedisServer

SINK = "127.0.0.20"


def node_config(folder: Path, name: str, port: int, sink: int, redis: str, extra: str) -> str:
    nowhere = folder / "resolv.conf"
    nowhere.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    return f"""
hostname = "{name}.bench.test"
spoolbase = "{folder / "spool"}"
force_fsync = false
shutdown_timeout = 2
resolv_conf = "{nowhere}"
dns_port = 9
cluster {{
  redis_url = "{redis}"
  node_name = "{name}"
}}
esmtp_listener {{
  relay_hosts = ( "127.0.0.0/8" )
  max_connections_per_ip = 0
  listen "127.0.0.1:{port}" {{ reuse_port = true }}
}}
domain "bench.example" {{
  gateway = "{SINK}:{sink}"
  max_outbound_connections = 20
  {extra}
}}
"""


def one_run(work: Path, redis: str, nodes: int, extra: str, args: argparse.Namespace) -> float:
    work.mkdir()
    port, sink_port = free_port(), free_port(SINK)
    sink_out = work / "sink.json"
    sink = spawn(
        [
            sys.executable, "-m", "tests.bench.sink", "--listen", SINK, "--port", str(sink_port),
            "--expect", str(args.messages), "--seconds", str(args.timeout), "--out", str(sink_out),
        ],
        work / "sink.err",
    )  # fmt: skip
    assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
    relays = []
    try:
        for index in range(nodes):
            folder = work / f"n{index}"
            folder.mkdir()
            conf = folder / "relay.conf"
            conf.write_text(node_config(folder, f"n{index}", port, sink_port, redis, extra))
            relays.append(
                spawn(
                    [sys.executable, "-m", "relay.cli", "serve", "-c", str(conf)],
                    folder / "relay.log",
                    stdout=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the relay nodes did not start") from None
                time.sleep(0.05)
        time.sleep(1.0)  # every node listening (reuse_port) and heartbeating
        inject_out = work / "inject.json"
        subprocess.run(
            [
                sys.executable, "-m", "tests.bench.inject", "--port", str(port),
                "--messages", str(args.messages), "--sessions", str(args.sessions),
                "--seconds", str(args.timeout), "--out", str(inject_out),
            ],
            check=True, cwd=ROOT, timeout=args.timeout + 30,
        )  # fmt: skip
        sink.wait(args.timeout + 10)
    finally:
        for relay in relays:
            stop(relay)
        stop(sink)
    injected = json.loads(inject_out.read_text())
    arrived = json.loads(sink_out.read_text())
    arrivals = list(arrived["arrivals"].values())
    if len(arrivals) < args.messages:
        raise RuntimeError(f"only {len(arrivals)} of {args.messages} arrived in time")
    return args.messages / (max(arrivals) - injected["start"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", help="write the rates as JSON here (tests/bench/run.py)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="relay-cluster-bench-"))
    redis_dir = work / "redis"
    redis_dir.mkdir()
    redis = RedisServer(redis_dir).start()
    try:
        rows = [
            ("1 node (cluster stanza, no cluster limit)", 1, ""),
            ("2 nodes sharing one Redis and one address", 2, ""),
            (
                "1 node, cluster throttle never reached",
                1,
                'cluster_outbound_throttle_messages = "1000000/1"',
            ),
        ]
        # Alternating rounds: this machine's noise between runs is larger than the effects.
        rates: list[list[float]] = [[] for _ in rows]
        for round_ in range(args.rounds):
            for index, (label, nodes, extra) in enumerate(rows):
                work_dir = work / f"run{round_}-{index}"
                rates[index].append(one_run(work_dir, redis.url, nodes, extra, args))
                print(f"{label}: {rates[index][-1]:,.0f} msgs/s", flush=True)
        best = [max(found) for found in rates]
        print(f"best of {args.rounds}: " + ", ".join(f"{rate:,.0f}" for rate in best))
        print(f"2 nodes / 1 node: {best[1] / best[0]:.2f}")
        print(f"never-reached cluster throttle / none: {best[2] / best[0]:.2f} (target >= 0.9)")
        if args.out:
            result = {
                "messages": args.messages,
                "sessions": args.sessions,
                "rounds": args.rounds,
                "one_node": best[0],
                "two_nodes": best[1],
                "throttle_never_reached": best[2],
                "runs": rates,
            }
            Path(args.out).write_text(json.dumps(result))
    finally:
        redis.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
