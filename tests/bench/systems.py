"""The systems under test: relay (`relay serve`) and Postfix (its own config and queue
directory), each started on a free port, pointed at the sink, and measured through /proc."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_port(host: str, port: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5) as s:
                s.recv(512)
                s.sendall(b"QUIT\r\n")
            return True
        except OSError:
            time.sleep(0.05)
    return False


# --- /proc ---------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out.extend(int(c) for c in text.split())
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU of a process tree: the root's own and reaped children's time, plus the live
    descendants' own time. Differences of two readings count every process that ran."""
    total = 0
    for i, p in enumerate(tree(pid)):
        f = _stat(p)
        if f is None:
            continue
        # fields after the comm: state=0 ... utime=11 stime=12 cutime=13 cstime=14
        total += int(f[11]) + int(f[12])
        if i == 0:
            total += int(f[13]) + int(f[14])
    return total / TICKS


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_kb(pid: int) -> int:
    """Proportional set size of a process tree (shared pages split between processes)."""
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


@dataclass(frozen=True)
class BenchCerts:
    """trustme certificates for the TLS rows: one for the systems' listeners, one for the
    sink (nobody checks them: opportunistic TLS, as Postfix's `may`)."""

    directory: Path

    @property
    def server(self) -> tuple[Path, Path]:
        return self.directory / "server.pem", self.directory / "server.key"

    @property
    def sink(self) -> tuple[Path, Path]:
        return self.directory / "sink.pem", self.directory / "sink.key"

    def make(self) -> BenchCerts:
        import trustme

        self.directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        for (cert, key), names in (
            (self.server, ("relay.bench.test", "postfix.bench.test", "127.0.0.1")),
            (self.sink, ("sink.bench.test", "127.0.0.20")),
        ):
            issued = ca.issue_cert(*names)
            issued.private_key_pem.write_to_path(str(key))
            issued.cert_chain_pems[0].write_to_path(str(cert))
            key.chmod(0o644)  # Postfix reads it as root; the sink as this user
        return self


# --- relay ---------------------------------------------------------------------------------


def binding_addresses(count: int) -> list[str]:
    if count <= 4:
        return [f"127.0.0.{2 + i}" for i in range(count)]
    base = int(ipaddress.IPv4Address("127.0.1.0"))
    return [str(ipaddress.IPv4Address(base + i)) for i in range(count)]


@dataclass
class Relay:
    directory: Path
    bindings: int = 4
    gateway: str | None = None  # "ip:port"; None with suspend
    suspend: bool = False
    fsync: bool = True
    connections_per_binding: int = 5
    workers: int = 0  # injection_workers
    http: bool = False  # the admin API on, with an inject token (HTTP injection)
    dkim: str | None = None  # sign every message: "rsa" (RSA-2048) or "ed25519"
    tls: BenchCerts | None = None  # STARTTLS offered on injection, tried on delivery
    name: str = "relay"
    port: int = 0
    admin_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    notes: list[str] = field(default_factory=list)

    def config_text(self) -> str:
        lines = [
            'hostname = "relay.bench.test"',
            f'spoolbase = "{self.directory / "spool"}"',
            f'event_log = "{self.directory / "events.jsonl"}"',
            f"force_fsync = {'true' if self.fsync else 'false'}",
            "shutdown_timeout = 5",
            f"max_outbound_connections = {self.connections_per_binding}",
            f"injection_workers = {self.workers}",
        ]
        if self.http:
            lines.append(f'admin_listen = "127.0.0.1:{self.admin_port}"')
            lines.append(f'admin_token_file = "{self.directory / "admin-tokens"}"')
        if self.gateway:
            lines.append(f'gateway = "{self.gateway}"')
        if self.suspend:
            lines.append("suspend_delivery = true")
        if self.tls is not None:
            lines.append('tls = "ifavailable"')
        lines += [
            "esmtp_listener {",
            '  relay_hosts = ( "127.0.0.0/8" )',
        ]
        if self.tls is not None:
            cert, key = self.tls.server
            lines += [f'  tls_certificate = "{cert}"', f'  tls_key = "{key}"']
        lines += [
            f'  listen "127.0.0.1:{self.port}" {{ binding_group = "bench" }}',
            "}",
            'binding_group "bench" {',
            '  ehlo_hostname = "relay.bench.test"',
        ]
        for i, address in enumerate(binding_addresses(self.bindings)):
            lines.append(f'  binding "b{i + 1}" {{ bind_address = {address} }}')
        lines.append("}")
        if self.dkim is not None:
            digest = "ed25519-sha256" if self.dkim == "ed25519" else "rsa-sha256"
            lines += [
                'opendkim "bench" {',
                '  header_canon = "relaxed"',
                '  body_canon = "relaxed"',
                f'  digest = "{digest}"',
                f'  key = "{self.directory / "dkim.pem"}"',
                '  selector = "bench"',
                "}",
            ]
        return "\n".join(lines) + "\n"

    def start(self, within: float = 30.0) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.port = free_port()
        if self.http:
            self.admin_port = free_port()
            self.token_file.write_text("bench-token-0123456789abcdef\n")
            (self.directory / "admin-tokens").write_text(
                "bench:inject:bench-token-0123456789abcdef\n"
            )
        conf = self.directory / "relay.conf"
        if self.dkim is not None:
            from tests.support.dkim_tools import write_key

            write_key(self.directory / "dkim.pem", self.dkim)
        conf.write_text(self.config_text())
        self.log = self.directory / "relay.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "relay"), "serve", "-c", str(conf)],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if b"listening on" in line:
                return
        raise RuntimeError(f"relay did not start; see {self.log}")

    @property
    def token_file(self) -> Path:
        """The bare inject token, for the HTTP injector."""
        return self.directory / "inject-token"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_kb(self) -> int:
        """Peak RSS summed over the daemon and its injection workers (an upper bound)."""
        return sum(status_kb(p, "VmHWM") for p in tree(self.pid))

    def rss_kb(self) -> int:
        return status_kb(self.pid, "VmRSS")

    def stop(self, within: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.notes.append("relay ignored SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def cleanup(self) -> None:
        shutil.rmtree(self.directory / "spool", ignore_errors=True)


# --- Postfix -------------------------------------------------------------------------------

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_available() -> str | None:
    """None if Postfix can be used, else why not."""
    if not os.path.exists(POSTFIX):
        return "Postfix not installed"
    if os.geteuid() != 0:
        return "Postfix needs root to start"
    return None


@dataclass
class Postfix:
    directory: Path
    relayhost: str | None = None  # "ip:port"
    hold: bool = False  # injection only: every message goes to the hold queue
    tls: BenchCerts | None = None  # smtpd_ and smtp_tls_security_level = may
    name: str = "postfix"
    port: int = 0
    notes: list[str] = field(default_factory=list)
    master_pid: int = 0

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [POSTFIX, "-c", str(self.directory / "conf"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def main_cf(self) -> str:
        d = self.directory
        restrictions = "permit_mynetworks, reject"
        if self.hold:
            restrictions = "check_client_access static:HOLD, " + restrictions
        lines = [
            "compatibility_level = 3.6",
            f"queue_directory = {d / 'queue'}",
            f"data_directory = {d / 'data'}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "myhostname = postfix.bench.test",
            "mydomain = bench.test",
            "myorigin = $myhostname",
            "mydestination =",
            "local_recipient_maps =",
            "local_transport = error:no local delivery",
            "alias_maps =",
            "alias_database =",
            "relay_domains =",
            "mynetworks = 127.0.0.0/8",
            f"smtpd_relay_restrictions = {restrictions}",
            f"smtpd_recipient_restrictions = {restrictions}",
            "smtpd_peername_lookup = no",
            "smtp_bind_address = 127.0.0.2",
            "smtp_host_lookup = native",
            "smtp_dns_support_level = disabled",
            "default_destination_concurrency_limit = 20",
            "smtputf8_enable = no",
            "biff = no",
            f"maillog_file = {d / 'maillog'}",
            f"maillog_file_prefixes = {d}",
            "smtpd_client_connection_count_limit = 0",
            "smtpd_client_connection_rate_limit = 0",
            "smtpd_client_message_rate_limit = 0",
            "smtpd_client_recipient_rate_limit = 0",
        ]
        if self.tls is not None:
            cert, key = self.tls.server
            lines += [
                f"smtpd_tls_cert_file = {cert}",
                f"smtpd_tls_key_file = {key}",
                "smtpd_tls_security_level = may",
                "smtp_tls_security_level = may",
                # the session caches as Debian's main.cf ships them
                f"smtpd_tls_session_cache_database = btree:{d / 'data'}/smtpd_scache",
                f"smtp_tls_session_cache_database = btree:{d / 'data'}/smtp_scache",
            ]
        if self.relayhost:
            host, port = self.relayhost.rsplit(":", 1)
            lines.append(f"relayhost = [{host}]:{port}")
        return "\n".join(lines) + "\n"

    def start(self, within: float = 30.0) -> None:
        self.stop_stale()
        shutil.rmtree(self.directory, ignore_errors=True)
        conf = self.directory / "conf"
        conf.mkdir(parents=True)
        (self.directory / "data").mkdir()
        (self.directory / "queue").mkdir()
        shutil.chown(self.directory / "data", "postfix")
        self.port = free_port()
        (conf / "main.cf").write_text(self.main_cf())
        (conf / "master.cf").write_text(MASTER_CF.format(port=self.port))
        started = self._postfix("start", check=False)
        if started.returncode != 0:
            why = (started.stderr + started.stdout).strip()[-400:] or "no message"
            raise RuntimeError(f"postfix -c {conf} start failed ({why})")
        if not wait_port("127.0.0.1", self.port, within):
            raise RuntimeError("postfix did not listen in time")
        pidfile = self.directory / "queue" / "pid" / "master.pid"
        self.master_pid = int(pidfile.read_text().split()[0])

    def stop_stale(self) -> None:
        if (self.directory / "conf" / "main.cf").exists():
            self._postfix("stop", check=False)

    @property
    def pid(self) -> int:
        return self.master_pid

    def cpu(self) -> float:
        return cpu_seconds(self.master_pid)

    def peak_rss_kb(self) -> int:
        return tree_pss_kb(self.master_pid)  # no peak for a process tree: PSS now

    def rss_kb(self) -> int:
        return tree_pss_kb(self.master_pid)

    def stop(self, within: float = 15.0) -> None:
        if not self.master_pid:
            return
        self._postfix("stop", check=False)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and Path(f"/proc/{self.master_pid}").exists():
            time.sleep(0.1)
        self.master_pid = 0

    def cleanup(self) -> None:
        shutil.rmtree(self.directory / "queue", ignore_errors=True)


# --- Haraka --------------------------------------------------------------------------------

HARAKA_HOME = ROOT / "build" / "bench" / "haraka"  # `make bench-deps`: npm install Haraka@3
HARAKA_BIN = HARAKA_HOME / "node_modules" / "Haraka" / "bin" / "haraka"

# The relay ACL (Postfix's mynetworks, relay's relay_hosts: 127.0.0.0/8) and the route to
# the sink from the source address Postfix uses, in a plugin of the bench's own: Haraka 3
# ships neither haraka-plugin-relay nor a static route without smtp_forward's inline mode.
HARAKA_PLUGIN = """\
'use strict'
const cfg = JSON.parse(require('fs').readFileSync(process.env.HARAKA + '/bench.json'))
exports.hook_lookup_rdns = function (next, connection) {
    next(OK, 'localhost') // no DNS (Postfix: smtpd_peername_lookup = no)
}
exports.hook_connect = function (next, connection) {
    if (connection.remote.ip.startsWith('127.')) connection.relaying = true
    next()
}
exports.hook_get_mx = function (next, hmail, domain) {
    next(OK, { priority: 0, exchange: cfg.host, port: cfg.port, bind: cfg.bind })
}
"""


def haraka_available() -> str | None:
    """None if Haraka can be used, else why not."""
    if not HARAKA_BIN.exists():
        return f"Haraka not installed (make bench-deps puts it in {HARAKA_HOME})"
    if shutil.which("node") is None:
        return "node not installed"
    return None


def haraka_version() -> str:
    try:
        import json

        meta = json.loads((HARAKA_BIN.parents[1] / "package.json").read_text())
        return str(meta.get("version", "?"))
    except (OSError, ValueError):
        return "?"


@dataclass
class Haraka:
    """Haraka 3 from npm, one process (no cluster), its own outbound queue (Haraka writes
    queue files without fsync: its default), delivering to the sink from 127.0.0.2."""

    directory: Path
    relayhost: str | None = None  # "ip:port"
    hold: bool = False  # not supported: Haraka has no hold queue
    tls: BenchCerts | None = None  # not supported in the bench
    name: str = "haraka"
    port: int = 0
    notes: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 30.0) -> None:
        import json

        if self.hold or self.tls is not None:
            raise RuntimeError("Haraka runs in the bench's plain end-to-end rows only")
        shutil.rmtree(self.directory, ignore_errors=True)
        conf = self.directory / "config"
        shutil.copytree(HARAKA_BIN.parents[1] / "config", conf)  # Haraka's shipped defaults
        (self.directory / "plugins").mkdir()
        (self.directory / "queue").mkdir()
        self.port = free_port()
        host, port = (self.relayhost or "127.0.0.1:9").rsplit(":", 1)
        (self.directory / "bench.json").write_text(
            json.dumps({"host": host, "port": int(port), "bind": "127.0.0.2"})
        )
        (self.directory / "plugins" / "bench_route.js").write_text(HARAKA_PLUGIN)
        (conf / "plugins").write_text("bench_route\n")
        (conf / "me").write_text("haraka.bench.test\n")
        (conf / "host_list").write_text("")
        (conf / "smtp.ini").write_text(f"listen=127.0.0.1:{self.port}\nforce_shutdown_timeout=5\n")
        (conf / "outbound.ini").write_text("enable_tls=false\n")
        (conf / "log.ini").write_text("[main]\nlevel=notice\n")
        log = self.directory / "haraka.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                ["node", str(HARAKA_BIN), "-c", str(self.directory)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        if not wait_port("127.0.0.1", self.port, within):
            self.stop()
            raise RuntimeError(f"Haraka did not listen in time; see {log}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_kb(self) -> int:
        return status_kb(self.pid, "VmHWM")

    def rss_kb(self) -> int:
        return status_kb(self.pid, "VmRSS")

    def stop(self, within: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        shutil.rmtree(self.directory / "queue", ignore_errors=True)
