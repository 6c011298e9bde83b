"""`make bench`: relay side by side with Postfix and the loopback limit, on this machine.

    python -m tests.bench.run [--messages 20000] [--no-postfix] [--no-haraka] [--only b,c]
        [--profile [b|p|d|t]]

Scenarios (issue 8):
  a  injection only (delivery suspended / Postfix hold queue): accepted msgs/s, DATA->250;
     again with one injection worker per core (relay), and with smtp-source as the
     injector (rate only) when Postfix's tools are installed
  b  end to end: N x 2 KB, 1 recipient, 20 sessions, 4 bindings, gateway -> sink, fsync on
  c  the same with 10 recipients per message: recipients/s
  d  1,000 bindings in the group (relay only), --pairs times, each next to a 4-binding run
  e  100,000 messages queued for an unreachable destination (relay only): RSS, injection
  h  HTTP injection only (relay only; POST /api/v1/messages, 20 keep-alive clients, the
     same 2 KB messages as (a), delivery suspended): next to (a)'s SMTP rate
  p  a connection per message (most application mailers; smtp-source without -d): the
     Python injector opening a new SMTP session for every message, injection only
     (delivery suspended / hold queue: CPU per connection) and end to end; and
     smtp-source without -d into the system, injection only (delivery held) and
     -> smtp-sink end to end
  t  STARTTLS (trustme certificates) on injection, a connection per message, and on
     delivery (relay `tls = "ifavailable"`, Postfix `smtpd_/smtp_tls_security_level = may`
     with the session caches Debian ships): injection only and end to end
  k  DKIM signing (relay only): signatures/s for RSA-2048 and Ed25519 through relay's signer
     and its signing processes (tests/bench/dkim_sign.py) with the event loop's lag (max,
     p99), and (b) again with every message signed (RSA-2048, then Ed25519), next to a (b)
     run unsigned
  n  cluster (relay only, tests/bench/cluster.py): end-to-end rate of 1 node vs 2 nodes
     sharing one redis-server and one address (reuse_port), and 1 node with a cluster
     throttle whose limit is never reached (target >= 0.9 of the rate without it)
Haraka 3 (npm, build/bench/haraka, one process) runs next to Postfix in b, p and their C-tools
rows when `make bench-deps` could install it.
Every run is bounded by its message count and by --timeout seconds; a run that hits the
timeout reports what it got. Prints one table and writes it to var/bench/last-run.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.systems import (
    BIN,
    ROOT,
    BenchCerts,
    Haraka,
    Postfix,
    Relay,
    free_port,
    haraka_available,
    haraka_version,
    postfix_available,
    wait_port,
)

SYSTEMS = ("relay", "postfix", "haraka", "loopback")  # the table's columns
SINK_HOST = "127.0.0.20"
DEAD_HOST = "127.0.0.21"  # the slow destination of (e)
PY = sys.executable


@dataclass
class Result:
    system: str
    messages: int = 0
    rcpts: int = 1
    accepted: int = 0
    inject_rate: float | None = None
    e2e_rate: float | None = None
    delivered: int = 0
    recipients_delivered: int = 0
    data_p50: float | None = None  # seconds, end of DATA -> 250
    data_p99: float | None = None
    deliver_p50: float | None = None  # seconds, 250 -> arrival at the sink
    deliver_p99: float | None = None
    cpu_per_msg: float | None = None
    peak_rss_kb: int | None = None
    rss_kb: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rcpt_rate(self) -> float | None:
        return None if self.e2e_rate is None else self.e2e_rate * self.rcpts


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def spawn(
    args: list[str], err: Path, stdout: int | None = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """Start a helper with stderr to a log file (the child keeps its own copy of the fd)."""
    with open(err, "wb") as log:
        return subprocess.Popen(args, stdout=stdout, stderr=log, cwd=ROOT)


def stop(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, within: float = 10
) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Profiler:
    """py-spy record --pid, raw (collapsed) stacks, stopped with SIGINT."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        exe = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
        self.proc: subprocess.Popen[bytes] | None = None
        if exe:
            self.proc = spawn(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--nonblocking",
                    "-o",
                    str(out),
                ],
                out.with_suffix(".log"),
                stdout=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        stop(self.proc, signal.SIGINT, within=30)


def top_functions(raw: Path, count: int = 15) -> list[tuple[str, float, float]]:
    """(function, own %, total %) from py-spy's collapsed stacks, by own samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    frame_re = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        weight = int(n)
        samples += weight
        names = []
        for frame in stack.split(";") if stack.strip() else ["(no Python frame)"]:
            m = frame_re.match(frame)
            name = f"{m.group(1)} ({m.group(2)})" if m else frame
            name = name.replace(str(ROOT) + "/", "")
            names.append(name)
        if names:
            own[names[-1]] += weight
            for name in set(names):
                total[name] += weight
    if not samples:
        return []
    return [(f, 100 * n / samples, 100 * total[f] / samples) for f, n in own.most_common(count)]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = ROOT / "var" / "bench"
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.run_id = datetime.datetime.now().strftime("%H%M%S")

    def log(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def case(
        self,
        label: str,
        system: Relay | Postfix | Haraka | None,
        *,
        messages: int,
        rcpts: int = 1,
        deliver: bool = True,
        gateway: str | None = None,
        profile: Path | None = None,
        http: bool = False,
        per_connection: int = 0,
        tls: BenchCerts | None = None,
    ) -> Result:
        a = self.args
        name = system.name if system else "loopback"
        result = Result(name, messages=messages, rcpts=rcpts)
        tag = f"{label}-{name}"
        self.log(f"{tag}: {messages} messages x {rcpts} rcpt, {a.sessions} sessions")
        sink = injector = None
        profiler = None
        started = time.monotonic()
        budget = a.timeout
        try:
            sink_out = self.work / f"{tag}.sink.json"
            inject_out = self.work / f"{tag}.inject.json"
            for f in (sink_out, inject_out):
                f.unlink(missing_ok=True)
            target = ("127.0.0.1", 0)
            if deliver:
                sink_port = free_port(SINK_HOST)
                sink = spawn(
                    [
                        PY,
                        "-m",
                        "tests.bench.sink",
                        "--listen",
                        SINK_HOST,
                        "--port",
                        str(sink_port),
                        "--expect",
                        str(messages),
                        "--seconds",
                        str(budget),
                        "--out",
                        str(sink_out),
                        *(
                            ["--tls-cert", str(tls.sink[0]), "--tls-key", str(tls.sink[1])]
                            if tls is not None
                            else []
                        ),
                    ],
                    self.logs / f"{tag}.sink.log",
                )
                assert sink.stdout is not None
                if sink.stdout.readline().strip() != b"ready":
                    raise RuntimeError("sink did not start")
                gateway = f"{SINK_HOST}:{sink_port}"
                target = (SINK_HOST, sink_port)
            if isinstance(system, Relay):
                system.gateway = gateway
                system.suspend = not deliver and gateway is None
            elif isinstance(system, (Postfix, Haraka)):
                system.relayhost = gateway
                system.hold = not deliver
            if system is not None:
                system.tls = tls
                system.start()
                target = ("127.0.0.1", system.port)
                cpu0 = system.cpu()
                if profile is not None:
                    profiler = Profiler(system.pid, profile)
                    time.sleep(0.5)
            t0 = time.monotonic()
            if http:
                assert isinstance(system, Relay)
                to = ["--url", f"http://127.0.0.1:{system.admin_port}"]
                to += ["--token-file", str(system.token_file)]
            else:
                to = ["--host", target[0], "--port", str(target[1])]
            injector = spawn(
                [
                    PY,
                    "-m",
                    "tests.bench.inject_http" if http else "tests.bench.inject",
                    *to,
                    "--messages",
                    str(messages),
                    "--sessions",
                    str(a.sessions),
                    "--size",
                    str(a.size),
                    "--rcpts",
                    str(rcpts),
                    "--run",
                    tag,
                    "--seconds",
                    str(budget),
                    "--out",
                    str(inject_out),
                    *(["--per-connection", str(per_connection)] if per_connection else []),
                    *(["--starttls"] if tls is not None else []),
                ],
                self.logs / f"{tag}.inject.log",
            )
            try:
                injector.wait(budget + 60)
            except subprocess.TimeoutExpired:
                result.notes.append("injector killed at the timeout")
                stop(injector, signal.SIGKILL)
            if sink is not None:
                left = max(1.0, budget - (time.monotonic() - t0))
                try:
                    sink.wait(left)
                except subprocess.TimeoutExpired:
                    result.notes.append(f"timeout {budget:.0f}s: not everything delivered")
                    stop(sink)
            if system is not None:
                result.cpu_per_msg = (system.cpu() - cpu0) / max(1, messages)
                result.peak_rss_kb = system.peak_rss_kb()
                result.rss_kb = system.rss_kb()
            if profiler is not None:
                profiler.stop()
            self.measure(result, inject_out, sink_out if deliver else None, t0)
            if system is not None and result.accepted:
                result.cpu_per_msg = (result.cpu_per_msg or 0) * messages / result.accepted
        except Exception as err:  # report what happened, keep going
            result.error = f"{type(err).__name__}: {err}"
            self.log(f"{tag}: {result.error}")
        finally:
            if profiler is not None:
                profiler.stop()
            stop(injector)
            if system is not None:
                system.stop()
                system.cleanup()
            stop(sink)
        self.log(
            f"{tag}: done in {time.monotonic() - started:.1f}s: inject {fmt(result.inject_rate)}"
            f"/s, e2e {fmt(result.e2e_rate)}/s"
            + (f", cpu {1000 * result.cpu_per_msg:.3f} ms/msg" if result.cpu_per_msg else "")
            + f" {'; '.join(result.notes)}"
        )
        return result

    def measure(self, result: Result, inject_out: Path, sink_out: Path | None, t0: float) -> None:
        inj = json.loads(inject_out.read_text())
        accepted = inj["accepted"]
        result.accepted = len(accepted)
        if inj["refused"]:
            result.notes.append(f"refused: {inj['refused']}")
        if inj["errors"]:
            result.notes.append(f"injector errors: {len(inj['errors'])} ({inj['errors'][0]})")
        if accepted:
            last_250 = max(t for _, _, t in accepted)
            result.inject_rate = len(accepted) / (last_250 - inj["start"])
            lat = [t250 - tdata for _, tdata, t250 in accepted]
            result.data_p50, result.data_p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        if sink_out is None:
            return
        if not sink_out.exists():
            result.notes.append("sink wrote no results")
            return
        sink = json.loads(sink_out.read_text())
        arrivals: dict[str, float] = sink["arrivals"]
        result.delivered = len(arrivals)
        result.recipients_delivered = sink["recipients"]
        if sink["duplicates"]:
            result.notes.append(f"{sink['duplicates']} duplicate deliveries")
        if result.delivered < result.messages:
            result.notes.append(f"sink got {result.delivered}/{result.messages}")
        if arrivals:
            result.e2e_rate = len(arrivals) / (max(arrivals.values()) - inj["start"])
            if result.rcpts > 1 and result.delivered:
                # recipients/s counted at the sink, over the same interval
                result.e2e_rate = (
                    result.recipients_delivered
                    / result.rcpts
                    / (max(arrivals.values()) - inj["start"])
                )
            sent = {seq: t250 for seq, _, t250 in accepted}
            lat = []
            for token, t in arrivals.items():
                seq = int(token.rsplit("-", 1)[1])
                if seq in sent:
                    lat.append(t - sent[seq])
            result.deliver_p50, result.deliver_p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        if sink.get("tls_sessions"):
            result.notes.append(
                f"{sink['tls_sessions']} TLS sessions at the sink over {sink['connections']} "
                f"connections ({sink.get('tls_resumed', 0)} resumed)"
            )
        if result.system == "loopback":
            result.deliver_p50 = result.deliver_p99 = None  # the sink is the server: no 250 first
        peers = sink.get("peers", {})
        if peers and result.system == "relay":
            result.notes.append(f"{len(peers)} source addresses seen at the sink")


def fmt(v: float | None, scale: float = 1.0, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v * scale:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        mem_gb = f"{int(mem) / 1024 / 1024:.1f} GB"
    except OSError:
        mem_gb = "?"
    cpus = f"{os.cpu_count()} CPUs ({model})"
    return f"{platform.node()}: {cpus}, {mem_gb} RAM, Linux {platform.release()}"


def revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "relay"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
    except OSError:
        return "?"
    return f"{head}" + (" + uncommitted changes under relay/" if dirty else "")


def postfix_version() -> str:
    try:
        out = subprocess.run(
            ["postconf", "-d", "mail_version"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.split("=")[-1].strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def build_table(
    args: argparse.Namespace,
    res: dict[str, Result],
    postfix_note: str | None,
    extra: list[str],
    d_ratios: list[float] | None = None,
    dkim: dict[str, float] | None = None,
    haraka_note: str | None = None,
    cluster: dict[str, Any] | None = None,
) -> str:
    def g(key: str) -> Result | None:
        return res.get(key)

    rows: list[list[str]] = []

    def row(
        scenario: str,
        metric: str,
        key: str,
        attr: str,
        scale: float = 1.0,
        digits: int = 0,
        note: str = "",
    ) -> None:
        vals = []
        for system in SYSTEMS:
            r = g(f"{key}-{system}")
            if r is None:
                vals.append(None)
                continue
            vals.append(getattr(r, attr))
        cells = []
        for system, v in zip(SYSTEMS, vals, strict=True):
            r = g(f"{key}-{system}")
            if r is None:
                cells.append("n/a")
            elif r.error and v is None:
                cells.append("error")
            else:
                cells.append(fmt(v, scale, digits))
        rows.append(
            [
                scenario,
                metric,
                *cells,
                ratio(vals[0], vals[1]),
                ratio(vals[0], vals[2]),
                ratio(vals[0], vals[3]),
                note,
            ]
        )

    n = args.messages
    if g("a-relay") or g("a-postfix"):
        s = f"(a) injection only, {n:,} x {args.size} B, {args.sessions} sessions, fsync"
        row(s, "accepted msgs/s", "a", "inject_rate")
        row(s, "DATA end -> 250 p50 (ms)", "a", "data_p50", 1000, 2)
        row(s, "DATA end -> 250 p99 (ms)", "a", "data_p99", 1000, 2)
        row(s, "CPU ms/msg", "a", "cpu_per_msg", 1000, 3)
        row(s, "peak RSS (MB)", "a", "peak_rss_kb", 1 / 1024, 0)
    if g("aw-relay"):
        aw = g("aw-relay")
        a_rel = g("a-relay")
        assert aw is not None
        note = f"vs (a): {ratio(aw.inject_rate, a_rel.inject_rate if a_rel else None)}"
        s = f"(a) with injection_workers = {max(2, os.cpu_count() or 2)}"
        row(s, "accepted msgs/s", "aw", "inject_rate", note=note)
        row(s, "DATA end -> 250 p99 (ms)", "aw", "data_p99", 1000, 2)
        row(s, "CPU ms/msg", "aw", "cpu_per_msg", 1000, 3)
    if g("h-relay"):
        h, a_rel = g("h-relay"), g("a-relay")
        assert h is not None
        note = f"vs SMTP (a): {ratio(h.inject_rate, a_rel.inject_rate if a_rel else None)}"
        s = f"(h) HTTP injection, {n:,} x {args.size} B, {args.sessions} keep-alive clients, fsync"
        row(s, "accepted msgs/s", "h", "inject_rate", note=note)
        row(s, "request -> 201 p50 (ms)", "h", "data_p50", 1000, 2)
        row(s, "request -> 201 p99 (ms)", "h", "data_p99", 1000, 2)
        row(s, "CPU ms/msg", "h", "cpu_per_msg", 1000, 3)
    if g("ac-relay") or g("ac-postfix"):
        s = f"(a, C tools) smtp-source -> system, {n:,} msgs, delivery held"
        row(s, "accepted msgs/s", "ac", "inject_rate")
        row(s, "CPU ms/msg", "ac", "cpu_per_msg", 1000, 3)
    if g("b-relay") or g("b-postfix"):
        s = f"(b) end to end, {n:,} x {args.size} B, 1 rcpt, 4 bindings, fsync"
        row(s, "injection msgs/s", "b", "inject_rate")
        row(s, "end-to-end msgs/s", "b", "e2e_rate")
        row(s, "DATA end -> 250 p50 (ms)", "b", "data_p50", 1000, 2)
        row(s, "DATA end -> 250 p99 (ms)", "b", "data_p99", 1000, 2)
        row(s, "250 -> sink p50 (ms)", "b", "deliver_p50", 1000, 1)
        row(s, "250 -> sink p99 (ms)", "b", "deliver_p99", 1000, 1)
        row(s, "CPU ms/msg", "b", "cpu_per_msg", 1000, 3)
        row(s, "peak RSS (MB)", "b", "peak_rss_kb", 1 / 1024, 0)
    if g("bc-relay") or g("bc-postfix") or g("bc-loopback"):
        s = f"(b, C tools) smtp-source -> system -> smtp-sink, {n:,} msgs"
        row(s, "injection msgs/s", "bc", "inject_rate")
        row(s, "end-to-end msgs/s", "bc", "e2e_rate")
        row(s, "CPU ms/msg", "bc", "cpu_per_msg", 1000, 3)
    if g("pa-relay") or g("pa-postfix"):
        s = f"(p) a connection per message, injection only, {n:,} x {args.size} B, fsync"
        row(s, "accepted msgs/s (= connections/s)", "pa", "inject_rate")
        row(s, "DATA end -> 250 p99 (ms)", "pa", "data_p99", 1000, 2)
        row(s, "CPU ms/connection (1 msg each)", "pa", "cpu_per_msg", 1000, 3)
    if g("pac-relay") or g("pac-postfix"):
        s = f"(p, C tools) smtp-source without -d -> system, {n:,} msgs, delivery held"
        row(s, "accepted msgs/s (= connections/s)", "pac", "inject_rate", note="target >= 4")
        row(s, "CPU ms/connection (1 msg each)", "pac", "cpu_per_msg", 1000, 3)
    if g("pb-relay") or g("pb-postfix"):
        s = f"(p) a connection per message, end to end, {n:,} x {args.size} B, 4 bindings"
        row(s, "injection msgs/s", "pb", "inject_rate")
        row(s, "end-to-end msgs/s", "pb", "e2e_rate", note="target relay/Postfix >= 4")
        row(s, "250 -> sink p99 (ms)", "pb", "deliver_p99", 1000, 1)
        row(s, "CPU ms/msg", "pb", "cpu_per_msg", 1000, 3, note="target relay <= 0.3")
    if g("pc-relay") or g("pc-postfix") or g("pc-loopback"):
        s = f"(p, C tools) smtp-source without -d -> system -> smtp-sink, {n:,} msgs"
        row(s, "injection msgs/s", "pc", "inject_rate")
        row(s, "end-to-end msgs/s", "pc", "e2e_rate", note="target relay/Postfix >= 4")
        row(s, "CPU ms/msg", "pc", "cpu_per_msg", 1000, 3, note="target relay <= 0.3")
    if g("ta-relay") or g("ta-postfix"):
        s = f"(t) STARTTLS, a connection per message, injection only, {n:,} x {args.size} B"
        row(s, "accepted msgs/s (= handshakes/s)", "ta", "inject_rate")
        row(s, "CPU ms/connection (1 msg each)", "ta", "cpu_per_msg", 1000, 3)
    if g("tb-relay") or g("tb-postfix"):
        s = (
            f"(t) STARTTLS on injection (a connection per message) and on delivery (connections "
            f"reused as configured), end to end, {n:,} x {args.size} B"
        )
        row(s, "injection msgs/s", "tb", "inject_rate")
        row(s, "end-to-end msgs/s", "tb", "e2e_rate", note="target relay/Postfix >= 2")
        row(s, "250 -> sink p99 (ms)", "tb", "deliver_p99", 1000, 1)
        row(s, "CPU ms/msg", "tb", "cpu_per_msg", 1000, 3)
    if g("c-relay") or g("c-postfix"):
        s = f"(c) {args.rcpt_messages:,} msgs x 10 rcpts"
        row(s, "end-to-end recipients/s", "c", "rcpt_rate")
        row(s, "injection msgs/s", "c", "inject_rate")
        row(s, "250 -> sink p99 (ms)", "c", "deliver_p99", 1000, 1)
        row(s, "CPU ms/msg", "c", "cpu_per_msg", 1000, 3)
    b = g("b-relay")
    if g("d-relay"):
        d = g("d-relay")
        assert d is not None
        note = f"vs 4 bindings: {ratio(d.e2e_rate, b.e2e_rate if b else None)}"
        if d_ratios and len(d_ratios) > 1:
            each = ", ".join(f"{r:.2f}" for r in d_ratios)
            note = f"vs 4 bindings: median {statistics.median(d_ratios):.2f} of pairs ({each})"
        s = f"(d) {args.bindings:,} bindings, {n:,} msgs"
        row(s, "end-to-end msgs/s", "d", "e2e_rate", note=note)
        if d_ratios:
            median = statistics.median(d_ratios)
            pairs = f"median of {len(d_ratios)} pair{'s' if len(d_ratios) > 1 else ''}"
            rows.append(
                [
                    s,
                    f"end-to-end rate vs 4 bindings ({pairs})",
                    f"{median:.2f}",
                    "n/a",
                    "n/a",
                    "n/a",
                    "-",
                    "-",
                    "-",
                    "target >= 0.9" + (" (short)" if median < 0.9 else ""),
                ]
            )
        row(s, "injection msgs/s", "d", "inject_rate")
        row(s, "250 -> sink p99 (ms)", "d", "deliver_p99", 1000, 1)
        row(s, "CPU ms/msg", "d", "cpu_per_msg", 1000, 3)
        row(s, "peak RSS (MB)", "d", "peak_rss_kb", 1 / 1024, 0)
    if g("e-relay"):
        e = g("e-relay")
        assert e is not None
        a_rel = g("a-relay")
        note = f"vs (a): {ratio(e.inject_rate, a_rel.inject_rate if a_rel else None)}"
        s = f"(e) {args.queued:,} msgs queued for a slow destination (accepts, never answers)"
        row(s, "injection msgs/s", "e", "inject_rate", note=note)
        row(s, "RSS at end (MB)", "e", "rss_kb", 1 / 1024, 0, note="target < 300 MB")
        row(s, "peak RSS (MB)", "e", "peak_rss_kb", 1 / 1024, 0)
        row(s, "CPU ms/msg", "e", "cpu_per_msg", 1000, 3)

    if dkim:
        processes = int(dkim.get("processes", 2))
        s = f"(k) DKIM signing, {int(dkim.get('size', 0)):,} B message, relaxed/relaxed"
        for kind, label in (("rsa", "RSA-2048"), ("ed25519", "Ed25519")):
            pool = fmt(dkim.get(f"{kind}_pool"))
            one = fmt(dkim.get(f"{kind}_one_thread"))
            gap = dkim.get(f"{kind}_loop_gap")
            p99 = dkim.get(f"{kind}_loop_lag_p99")
            alone = dkim.get(f"{kind}_key_alone")
            share = dkim.get(f"{kind}_of_key_alone")
            note = (
                f"sign_message on 1 thread: {one}/s; the key operation alone on {processes} "
                f"threads {fmt(alone)}/s, the pool {fmt(share, 1, 2)} of it (median of pairs); "
                f"event loop lag max {fmt(gap, 1000, 1)} ms, p99 {fmt(p99, 1000, 1)} ms"
            )
            if kind == "rsa":
                rate = dkim.get("rsa_pool")
                short = rate is not None and rate < 2000
                note += "; target >= 2,000" + (" (short)" if short else " (met)")
            metric = f"{label} signatures/s ({processes} signing processes)"
            rows.append([s, metric, pool, "n/a", "n/a", "n/a", "-", "-", "-", note])
    base = g("kb-relay")
    for key, label in (("kr", "RSA-2048"), ("ke", "Ed25519")):
        signed = g(f"{key}-relay")
        if signed is None:
            continue
        note = f"vs unsigned (b): {ratio(signed.e2e_rate, base.e2e_rate if base else None)}"
        s = f"(k) as (b), every message DKIM-signed ({label})"
        row(s, "end-to-end msgs/s", key, "e2e_rate", note=note)
        row(s, "injection msgs/s", key, "inject_rate")
        row(s, "DATA end -> 250 p99 (ms)", key, "data_p99", 1000, 2)
        row(s, "CPU ms/msg", key, "cpu_per_msg", 1000, 3)
    if g("kb-relay"):
        s = "(k) the unsigned (b) run beside them"
        row(s, "end-to-end msgs/s", "kb", "e2e_rate")
        row(s, "CPU ms/msg", "kb", "cpu_per_msg", 1000, 3)

    if cluster is not None:
        rows.extend(cluster_rows(cluster))

    head = ["scenario", "metric", "relay", "Postfix", "Haraka", "loopback", "relay/Postfix"]
    head += ["relay/Haraka", "relay/loopback", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    last = None
    for r in rows:
        if r[0] == last:
            r = ["", *r[1:]]
        else:
            last = r[0]
        lines.append("| " + " | ".join(r) + " |")
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    pf = postfix_note or f"Postfix {postfix_version()} (Debian package, own config + queue)"
    out = [
        f"## relay benchmark, {now}",
        "",
        f"Machine: {machine()}. relay at {revision()}.",
        "Injector and sink: Python (tests/bench/inject.py, tests/bench/sink.py, uvloop, one "
        "process each) for every row except the 'C tools' rows, which use Postfix's smtp-source "
        "(-d, 20 sessions; without -d in the (p) rows: a connection per message) and smtp-sink "
        "(-D dump to tmpfs, counted). Latencies are "
        "time.monotonic across processes: injector's 250 vs sink's arrival of the message's "
        "X-Bench-Token.",
        f"Postfix: {pf}. CPU = utime+stime of the process tree (Postfix: master + all its "
        "daemons). RSS: relay's VmHWM/VmRSS; Postfix: sum of PSS over its live processes "
        "at the end of the run.",
        "Haraka: "
        + (
            haraka_note
            or f"Haraka {haraka_version()} (npm, one process, plugins: the bench's relay ACL "
            "and route to the sink; its outbound queue as it ships: queue files not fsynced)"
        )
        + " (end-to-end rows only).",
        "loopback = the injector straight into the sink (this machine's limit with these tools).",
        "",
        *lines,
    ]
    notes = []
    for key, r in sorted(res.items()):
        if r.error or r.notes:
            notes.append(f"- {key}: {r.error or ''} {'; '.join(r.notes)}".rstrip())
    if notes:
        out += ["", "Run notes:", *notes]
    out += extra
    return "\n".join(out) + "\n"


def run_cluster(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """(n): tests/bench/cluster.py in a process of its own (its own redis-server, sink, nodes
    and injector); {"error": ...} when it fails."""
    out = bench.work / "cluster.json"
    out.unlink(missing_ok=True)
    command = [PY, "-m", "tests.bench.cluster", "--messages", str(args.cluster_messages)]
    command += ["--rounds", str(args.cluster_rounds)]
    command += ["--sessions", str(args.sessions), "--timeout", str(args.timeout)]
    command += ["--out", str(out)]
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=(args.timeout + 30) * 3 * args.cluster_rounds + 60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    (bench.logs / "n-cluster.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not out.exists():
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def cluster_rows(cluster: dict[str, Any]) -> list[list[str]]:
    """The (n) rows: end-to-end rates with their ratios in the note (relay only)."""
    if "error" in cluster:
        s = "(n) cluster: nodes sharing one Redis"
        return [
            [s, "end-to-end msgs/s", "error", "n/a", "n/a", "n/a", "-", "-", "-", cluster["error"]]
        ]
    one, two, throttled = (
        cluster["one_node"],
        cluster["two_nodes"],
        cluster["throttle_never_reached"],
    )
    s = (
        f"(n) cluster: nodes sharing one redis-server and one address (reuse_port), "
        f"{cluster['messages']:,} msgs, best of {cluster['rounds']} alternating rounds"
    )

    def line(metric: str, value: float, note: str) -> list[str]:
        return [s, metric, fmt(value), "n/a", "n/a", "n/a", "-", "-", "-", note]

    return [
        line("1 node, end-to-end msgs/s", one, "cluster stanza, no cluster limit"),
        line("2 nodes, end-to-end msgs/s", two, f"2 nodes / 1 node: {ratio(two, one)}"),
        line(
            "1 node, cluster throttle never reached, msgs/s",
            throttled,
            f"vs none: {ratio(throttled, one)} (target >= 0.9)",
        ),
    ]


def run_ctools(
    bench: Bench,
    system: Relay | Postfix | Haraka | None,
    messages: int,
    *,
    label: str = "bc",
    sessions_reused: bool = True,
) -> Result:
    """smtp-source -> system -> smtp-sink; rates only (no per-message timestamps).
    Without `sessions_reused`: smtp-source without -d (a connection per message).
    Injection alone with smtp-source (delivery held, no sink): run_source_only."""
    a = bench.args
    name = system.name if system else "loopback"
    result = Result(name, messages=messages)
    tag = f"{label}-{name}"
    bench.log(f"{tag}: {messages} messages with smtp-source/smtp-sink")
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else bench.work
    dump_dir = shm / f"relay-bench-{os.getpid()}"
    shutil.rmtree(dump_dir, ignore_errors=True)
    dump_dir.mkdir()
    dump_dir.chmod(0o777)
    dump = dump_dir / "dump"
    sink = source = None
    try:
        port = free_port(SINK_HOST)
        cmd = ["smtp-sink"] + (["-u", "nobody"] if os.geteuid() == 0 else [])
        sink = spawn(
            [*cmd, "-D", str(dump), f"{SINK_HOST}:{port}", "1024"], bench.logs / f"{tag}.log"
        )
        if not wait_port(SINK_HOST, port, 10):
            raise RuntimeError("smtp-sink did not start")
        target = f"{SINK_HOST}:{port}"
        if isinstance(system, Relay):
            system.gateway, system.suspend = target, False
        elif isinstance(system, (Postfix, Haraka)):
            system.relayhost, system.hold = target, False
        if system is not None:
            system.start()
            target = f"127.0.0.1:{system.port}"
            cpu0 = system.cpu()
        t0 = time.monotonic()
        source = spawn(
            source_command(bench, messages, target, reuse=sessions_reused),
            bench.logs / f"{tag}.source.log",
            stdout=subprocess.DEVNULL,
        )
        count, offset, carry, t_inject = 0, 0, b"", None
        marker = b"X-Client-Addr: "
        t_last = t0
        while time.monotonic() - t0 < a.timeout:
            if t_inject is None and source.poll() is not None:
                t_inject = time.monotonic()
            if dump.exists():
                with open(dump, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                offset += len(chunk)
                new = (carry + chunk).count(marker) - carry.count(marker)
                if new:
                    count += new
                    t_last = time.monotonic()
                carry = chunk[-len(marker) :] if chunk else carry
            if count >= messages:
                break
            time.sleep(0.02)
        else:
            result.notes.append(f"timeout: sink got {count}/{messages}")
        if t_inject is None:
            source.wait(a.timeout)
            t_inject = time.monotonic()
        if source.returncode:
            result.notes.append(f"smtp-source exit {source.returncode}")
        result.accepted = messages
        result.delivered = count
        result.inject_rate = messages / (t_inject - t0)
        result.e2e_rate = count / (t_last - t0) if count else None
        if system is not None:
            result.cpu_per_msg = (system.cpu() - cpu0) / messages
    except Exception as err:
        result.error = f"{type(err).__name__}: {err}"
        bench.log(f"{tag}: {result.error}")
    finally:
        stop(source)
        if system is not None:
            system.stop()
            system.cleanup()
        stop(sink)
        shutil.rmtree(dump_dir, ignore_errors=True)
    bench.log(f"{tag}: inject {fmt(result.inject_rate)}/s, e2e {fmt(result.e2e_rate)}/s")
    return result


def source_command(bench: Bench, messages: int, target: str, reuse: bool = True) -> list[str]:
    a = bench.args
    return [
        "smtp-source",
        *(["-d"] if reuse else []),
        "-s",
        str(a.sessions),
        "-m",
        str(messages),
        "-l",
        str(a.size),
        "-f",
        "bench@inject.bench.test",
        "-t",
        "rcpt@bench.example",
        "-M",
        "inject.bench.test",
        target,
    ]


def run_source_only(
    bench: Bench,
    system: Relay | Postfix | Haraka,
    messages: int,
    *,
    label: str = "ac",
    sessions_reused: bool = True,
) -> Result:
    """Injection only with smtp-source: the accepted rate when the injector costs little CPU.
    smtp-source stops at the first refusal, so a zero exit means all were accepted.
    Without `sessions_reused`: smtp-source without -d (a connection per message)."""
    result = Result(system.name, messages=messages)
    tag = f"{label}-{system.name}"
    bench.log(f"{tag}: {messages} messages with smtp-source, delivery held")
    source = None
    try:
        if isinstance(system, Relay):
            system.gateway, system.suspend = None, True
        else:
            system.relayhost, system.hold = None, True
        system.start()
        cpu0 = system.cpu()
        t0 = time.monotonic()
        target = f"127.0.0.1:{system.port}"
        source = spawn(
            source_command(bench, messages, target, reuse=sessions_reused),
            bench.logs / f"{tag}.source.log",
            stdout=subprocess.DEVNULL,
        )
        try:
            source.wait(bench.args.timeout)
        except subprocess.TimeoutExpired:
            result.notes.append("smtp-source killed at the timeout")
            stop(source, signal.SIGKILL)
        elapsed = time.monotonic() - t0
        if source.returncode:
            result.notes.append(f"smtp-source exit {source.returncode}")
        else:
            result.accepted = messages
            result.inject_rate = messages / elapsed
            result.cpu_per_msg = (system.cpu() - cpu0) / messages
            result.peak_rss_kb = system.peak_rss_kb()
    except Exception as err:
        result.error = f"{type(err).__name__}: {err}"
        bench.log(f"{tag}: {result.error}")
    finally:
        stop(source)
        system.stop()
        system.cleanup()
    bench.log(f"{tag}: accepted {fmt(result.inject_rate)}/s")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=20_000, help="N for a, b, d")
    p.add_argument("--rcpt-messages", type=int, default=5_000, help="messages for c")
    p.add_argument("--queued", type=int, default=100_000, help="messages for e")
    p.add_argument("--bindings", type=int, default=1_000, help="bindings for d")
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="relay's injection_workers (default 0: one process, relay's default; on 2 cores "
        "it beat 1 worker in (a) 3,167 vs 3,004 msgs/s and in (b) 1,894 vs 1,779, same run)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="(d) is run this many times, each next to a 4-binding (b) run of its own "
        "(b d, d b, b d, ...); the ratio reported is the median of the pairs",
    )
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--timeout", type=float, default=300.0, help="per run, seconds")
    p.add_argument("--only", default="a,h,b,p,t,c,d,e,k,n", help="scenarios to run")
    p.add_argument(
        "--cluster-messages",
        type=int,
        default=5_000,
        help="messages per run for n (tests/bench/cluster.py: 1 node, 2 nodes, a cluster "
        "throttle never reached)",
    )
    p.add_argument(
        "--cluster-rounds",
        type=int,
        default=3,
        help="n: alternating rounds of its three runs, the best of each reported (this VM's "
        "noise between runs is larger than the effects)",
    )
    p.add_argument("--no-postfix", action="store_true")
    p.add_argument("--no-haraka", action="store_true")
    p.add_argument("--no-c-tools", action="store_true", help="skip the smtp-source rows")
    p.add_argument(
        "--profile",
        nargs="?",
        const="b",
        choices=("b", "p", "d", "t"),
        help="an extra relay run under py-spy: (b), (p) end to end with a connection per "
        "message, (d) with --bindings bindings, or (t) with STARTTLS",
    )
    p.add_argument("--out", default=str(ROOT / "var" / "bench" / "last-run.md"))
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    bench = Bench(args)
    work = bench.work

    postfix_note = None if not args.no_postfix else "not run (--no-postfix)"
    if postfix_note is None:
        postfix_note = postfix_available()

    def relay(**kw: object) -> Relay:
        kw.setdefault("workers", args.workers)
        return Relay(work / "relay", **kw)  # type: ignore[arg-type]

    def postfix() -> Postfix | None:
        return None if postfix_note else Postfix(work / "postfix")

    haraka_note = "not run (--no-haraka)" if args.no_haraka else haraka_available()

    def haraka() -> Haraka | None:
        return None if haraka_note else Haraka(work / "haraka")

    res: dict[str, Result] = {}
    d_ratios: list[float] = []
    n = args.messages

    def held_by_smtp_source(label: str, *, sessions_reused: bool) -> None:
        """Injection alone with smtp-source into relay and Postfix, delivery held."""
        for name, system in (("relay", relay()), ("postfix", postfix())):
            if system is not None:
                res[f"{label}-{name}"] = run_source_only(
                    bench, system, n, label=label, sessions_reused=sessions_reused
                )

    def both(label: str, **kw: object) -> None:
        res[f"{label}-relay"] = bench.case(label, relay(), **kw)  # type: ignore[arg-type]
        pf = postfix()
        nonlocal postfix_note
        if pf is not None:
            r = bench.case(label, pf, **kw)  # type: ignore[arg-type]
            res[f"{label}-postfix"] = r
            if r.error and "start" in r.error and not r.accepted:
                postfix_note = f"could not be started ({r.error}); see {work}/postfix"

    def with_haraka(label: str, **kw: object) -> None:
        """Haraka next to relay and Postfix in the plain end-to-end rows."""
        nonlocal haraka_note
        hk = haraka()
        if hk is not None:
            r = bench.case(label, hk, **kw)  # type: ignore[arg-type]
            res[f"{label}-haraka"] = r
            if r.error and not r.accepted:
                haraka_note = f"could not be started ({r.error}); see {work}/haraka"

    have_c = shutil.which("smtp-source") and shutil.which("smtp-sink")
    spread = max(2, os.cpu_count() or 2)  # injection workers for the "every core" row
    if "a" in only:
        both("a", messages=n, deliver=False)
        if args.workers != spread:
            res["aw-relay"] = bench.case("aw", relay(workers=spread), messages=n, deliver=False)
        if not args.no_c_tools and have_c:
            held_by_smtp_source("ac", sessions_reused=True)
    if "h" in only:
        res["h-relay"] = bench.case("h", relay(http=True), messages=n, deliver=False, http=True)
    if "b" in only:
        both("b", messages=n)
        with_haraka("b", messages=n)
        res["b-loopback"] = bench.case("b", None, messages=n)
        res["a-loopback"] = res["b-loopback"]
    if "b" in only and not args.no_c_tools and have_c:
        res["bc-relay"] = run_ctools(bench, relay(), n)
        pf = postfix()
        if pf is not None:
            res["bc-postfix"] = run_ctools(bench, pf, n)
        hk = haraka()
        if hk is not None:
            res["bc-haraka"] = run_ctools(bench, hk, n)
        res["bc-loopback"] = run_ctools(bench, None, n)
    if "p" in only:
        both("pa", messages=n, deliver=False, per_connection=1)
        both("pb", messages=n, per_connection=1)
        with_haraka("pb", messages=n, per_connection=1)
        if not args.no_c_tools and have_c:
            held_by_smtp_source("pac", sessions_reused=False)
            res["pc-relay"] = run_ctools(bench, relay(), n, label="pc", sessions_reused=False)
            pf = postfix()
            if pf is not None:
                res["pc-postfix"] = run_ctools(bench, pf, n, label="pc", sessions_reused=False)
            hk = haraka()
            if hk is not None:
                res["pc-haraka"] = run_ctools(bench, hk, n, label="pc", sessions_reused=False)
    if "t" in only:
        certs = BenchCerts(work / "certs").make()
        both("ta", messages=n, deliver=False, per_connection=1, tls=certs)
        both("tb", messages=n, per_connection=1, tls=certs)
    if "c" in only:
        both("c", messages=args.rcpt_messages, rcpts=10)
        res["c-loopback"] = bench.case("c", None, messages=args.rcpt_messages, rcpts=10)
    if "d" in only:
        # This VM's speed drifts by more than the effect measured: each (d) run is paired
        # with a 4-binding run just before it, and the median ratio of the pairs is reported.
        # The order alternates (b d, d b, b d, ...) so that a drift in one direction
        # does not favour either side.
        for i in range(max(1, args.pairs)):
            base = res.get("b-relay") if i == 0 else None
            if base is None and i % 2 == 0:
                base = bench.case("b", relay(), messages=n)
            d = bench.case("d", relay(bindings=args.bindings), messages=n)
            if base is None:
                base = bench.case("b", relay(), messages=n)
            res.setdefault("b-relay", base)
            res.setdefault("d-relay", d)
            if base.e2e_rate and d.e2e_rate:
                d_ratios.append(d.e2e_rate / base.e2e_rate)
    if "e" in only:
        # A slow destination: it accepts connections and never answers.
        slow_port = free_port(DEAD_HOST)
        slow = spawn(
            [
                PY,
                "-m",
                "tests.bench.sink",
                "--listen",
                DEAD_HOST,
                "--port",
                str(slow_port),
                "--stall",
                "--seconds",
                str(args.timeout * 2),
                "--out",
                str(bench.work / "e-slow.json"),
            ],
            bench.logs / "e-slow.log",
        )
        try:
            assert slow.stdout is not None
            slow.stdout.readline()
            res["e-relay"] = bench.case(
                "e",
                relay(),
                messages=args.queued,
                deliver=False,
                gateway=f"{DEAD_HOST}:{slow_port}",
            )
        finally:
            slow.terminate()
            slow.wait(10)

    dkim: dict[str, float] | None = None
    if "k" in only:
        bench.log("k: DKIM signatures/s (tests/bench/dkim_sign.py)")
        signing = subprocess.run(
            [PY, "-m", "tests.bench.dkim_sign", "--size", str(args.size)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if signing.returncode == 0:
            dkim = json.loads(signing.stdout)
        else:
            bench.log(f"k: dkim_sign failed: {signing.stderr[-500:]}")
        # Signed runs next to an unsigned one of their own (this VM drifts).
        res["kb-relay"] = bench.case("kb", relay(), messages=n)
        res["kr-relay"] = bench.case("kr", relay(dkim="rsa"), messages=n)
        res["ke-relay"] = bench.case("ke", relay(dkim="ed25519"), messages=n)

    cluster: dict[str, Any] | None = None
    if "n" in only:
        bench.log("n: cluster nodes sharing one redis-server (tests/bench/cluster.py)")
        cluster = run_cluster(bench, args)

    extra: list[str] = []
    if args.profile:
        raw = work / f"profile-{args.profile}.txt"
        raw.unlink(missing_ok=True)
        key = {"p": "pb", "d": "d", "t": "tb"}.get(args.profile, "b")
        per_connection = 1 if args.profile in ("p", "t") else 0
        certs = BenchCerts(work / "certs").make() if args.profile == "t" else None
        system = relay(bindings=args.bindings) if args.profile == "d" else relay()
        r = bench.case(
            key, system, messages=n, profile=raw, per_connection=per_connection, tls=certs
        )
        if raw.exists():
            extra += [
                "",
                f"Profile: relay in ({args.profile}) under py-spy (250 Hz, nonblocking), {n:,} "
                f"messages, "
                f"end-to-end {fmt(r.e2e_rate)} msgs/s while profiled. Top functions by own time; "
                "samples cover every thread (the event loop and the spool's fsync threads), "
                "and a thread blocked in a system call counts as busy:",
                "",
                "| own % | total % | function |",
                "|---|---|---|",
            ]
            for func, own, total in top_functions(raw):
                extra.append(f"| {own:.1f} | {total:.1f} | `{func}` |")
        else:
            extra += ["", f"Profile: py-spy wrote nothing; see {raw.with_suffix('.log')}"]

    table = build_table(args, res, postfix_note, extra, d_ratios, dkim, haraka_note, cluster)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
