"""relay:local in containers on the host network: bindings' source addresses and EHLO
names at a sink container, kill -9 during injection, docker stop, the user it runs as, the
health check."""

from __future__ import annotations

import email.policy
import smtplib
import subprocess
import threading
import time
from pathlib import Path

from tests.docker.harness import (
    BINDINGS,
    RELAY_HOST,
    RELAY_UID,
    RelayContainer,
    Sink,
    docker,
    health,
    message,
    send,
    state,
    wait_for,
)


def test_each_binding_delivers_from_its_address_with_its_ehlo_name(
    relay: RelayContainer, sink: Sink
) -> None:
    relay.start()
    for n, port in enumerate(relay.ports):
        for seq in range(3):
            send(port, message(n * 10 + seq, tag="bind"))
    entries = wait_for(
        "6 messages at the sink", lambda: len(sink.entries()) >= 6 and sink.entries(), 60
    )
    seen = {(e["peer"], e["helo"]) for e in entries}
    assert seen == set(BINDINGS.values())
    by_peer = {e["message_id"]: e["peer"] for e in entries}
    assert by_peer["<bind-0@docker.relay.test>"] == BINDINGS["a1"][0]  # listener 1 -> g1 -> a1
    assert by_peer["<bind-10@docker.relay.test>"] == BINDINGS["a2"][0]
    for entry in entries:  # <bind-N@...> went to rcptN
        seq = entry["message_id"].removeprefix("<bind-").split("@")[0]
        assert entry["recipients"] == [f"rcpt{seq}@example.test"]
    # The event log's relative default (./var/log/events.jsonl) is the image's /var/log/relay.
    relay.exec("test", "-f", "/var/log/relay/events.jsonl")


def test_runs_as_relay_and_the_spool_belongs_to_it(relay: RelayContainer) -> None:
    relay.start()
    send(relay.ports[0], message(1, tag="owner"))
    status = relay.exec("cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(RELAY_UID)] * 4  # real, effective, saved, fs
    mountpoint = Path(docker("volume", "inspect", "-f", "{{.Mountpoint}}", relay.volume))
    paths = [mountpoint, *mountpoint.rglob("*")]
    assert any(path.is_file() for path in paths)
    assert {path.lstat().st_uid for path in paths} == {RELAY_UID}
    assert {path.lstat().st_gid for path in paths} == {RELAY_UID}


def test_health_check_follows_the_spool(relay: RelayContainer) -> None:
    relay.start(health_interval="1s")
    wait_for("healthy", lambda: health(relay.cid) == "healthy", 40)
    relay.exec("chmod", "0500", "/var/spool/relay")
    done = relay.exec("relay", "health", "-c", "/etc/relay/relay.conf", check=False)
    assert done.returncode == 1
    assert "unhealthy: spool /var/spool/relay" in done.stderr
    wait_for("unhealthy", lambda: health(relay.cid) == "unhealthy", 40)
    relay.exec("chmod", "0750", "/var/spool/relay")
    wait_for("healthy again", lambda: health(relay.cid) == "healthy", 40)


def test_kill_during_injection_loses_no_acknowledged_message(
    relay: RelayContainer, sink: Sink
) -> None:
    relay.start()
    total, sessions = 500, 4
    acknowledged: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def inject(worker: int) -> None:
        try:
            with smtplib.SMTP(RELAY_HOST, relay.ports[0], timeout=10) as smtp:
                for seq in range(worker, total, sessions):
                    msg = message(seq, tag="kill")
                    smtp.send_message(msg)  # raises unless 250
                    with lock:
                        acknowledged.append(str(msg["Message-ID"]))
                    time.sleep(0.01)  # a few hundred per second: the kill lands midway
        except (smtplib.SMTPException, OSError):
            assert killed.is_set(), "injection failed before the kill"

    threads = [threading.Thread(target=inject, args=(n,)) for n in range(sessions)]
    for thread in threads:
        thread.start()
    wait_for("100 acknowledged messages", lambda: len(acknowledged) >= 100, 60, step=0.01)
    killed.set()
    docker("kill", "-s", "KILL", relay.cid)
    for thread in threads:
        thread.join(30)
    assert state(relay.cid)["ExitCode"] == 137
    assert 100 <= len(acknowledged) < total, "the kill did not land during injection"

    relay.start()  # a new container on the same spool volume
    wanted = set(acknowledged)
    wait_for(
        f"all {len(wanted)} acknowledged messages at the sink",
        lambda: wanted <= sink.by_message_id().keys(),
        90,
        step=0.5,
    )
    arrived = sink.by_message_id()
    duplicates = sum(len(copies) - 1 for copies in arrived.values())
    print(
        f"\nkill -9: {len(wanted)} acknowledged of {total}, all arrived; "
        f"{len(arrived)} distinct at the sink, {duplicates} duplicates"
    )
    # Only deliveries in flight at the kill may repeat: at most one per connection (4) and
    # one each whose outcome was being journaled.
    assert duplicates <= 8


def test_docker_stop_drains_and_exits_zero(relay: RelayContainer, sink: Sink) -> None:
    relay.start(shutdown_timeout=10)
    for seq in range(20):
        send(relay.ports[1], message(seq, tag="stop"))
    smtp = smtplib.SMTP(RELAY_HOST, relay.ports[0], timeout=30)
    smtp.ehlo("injector.test")
    smtp.mail("sender@relay.test")
    smtp.rcpt("late@example.test")
    started = time.monotonic()
    stopper = subprocess.Popen(["docker", "stop", "-t", "30", relay.cid], stdout=subprocess.DEVNULL)
    try:
        wait_for(
            "the listener to close",
            lambda: _refused(relay.ports[1]),
            10,
        )
        late = message(99, tag="stop")
        code, _ = smtp.data(late.as_bytes(policy=email.policy.SMTP))
        assert code == 250  # the session in flight finishes while draining
        smtp.quit()
        assert stopper.wait(40) == 0
    finally:
        if stopper.poll() is None:
            stopper.kill()
    elapsed = time.monotonic() - started
    assert state(relay.cid)["ExitCode"] == 0
    assert not state(relay.cid)["OOMKilled"]
    assert elapsed < 30, f"docker stop took {elapsed:.1f} s"
    logs = subprocess.run(
        ["docker", "logs", relay.cid], capture_output=True, text=True, check=False, timeout=30
    )
    assert "stopping: no new connections; draining" in logs.stderr
    events = docker("cp", f"{relay.cid}:/var/log/relay/events.jsonl", "-")  # a tar stream
    assert events.count('"delivery"') >= 20  # flushed at exit
    relay.start()  # the late message was spooled before its 250: it is delivered now
    wait_for(
        "the 21 messages at the sink",
        lambda: (
            {f"<stop-{n}@docker.relay.test>" for n in [*range(20), 99]}
            <= sink.by_message_id().keys()
        ),
        60,
    )


def _refused(port: int) -> bool:
    import socket

    try:
        with socket.create_connection((RELAY_HOST, port), timeout=1) as sock:
            return not sock.recv(512).startswith(b"220")
    except OSError:
        return True


def test_image_holds_relay_and_its_runtime_only(image: str) -> None:
    listing = subprocess.run(
        [
            "docker", "run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c",
            "command -v gcc cc make pip pip3 || true; ls /opt/relay/lib/python3*/site-packages",
        ],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert not [tool for tool in listing if tool.startswith("/")], listing  # no compilers, pip
    packages = {name.split("-")[0].lower() for name in listing}
    assert {"relay", "dns", "uvloop", "prometheus_client"} <= packages
    for dev in ("pytest", "aiosmtpd", "aiosmtplib", "mypy", "ruff", "hypothesis", "tests", "pip"):
        assert dev not in packages
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image))
    print(f"\nimage {image}: {size / 1e6:.0f} MB")
    assert size < 250e6
