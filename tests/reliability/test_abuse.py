"""Abuse against a real `relay serve` process over real sockets: each abuse gets its exact
answer, and meanwhile a well-behaved client (another address) keeps injecting with a
latency close to an idle relay's (its figures are printed).

The bound is generous (latency_bound: 5x the idle p95 plus 400 ms): the machine may be a
shared 2-core box, and the abusing clients run in the test's own process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.reliability.abuse_support import (
    LISTENER_CAP,
    MAX_MESSAGE_SIZE,
    PER_IP_CAP,
    Client,
    Latency,
    LatencyProbe,
    RelayProcess,
    idle_latency,
    latency_bound,
    many,
)

FIGURES: list[str] = []


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RelayProcess]:
    with RelayProcess.start(tmp_path_factory.mktemp("abuse")) as process:
        yield process
    if FIGURES:  # on the terminal even when output is captured (as in `make test`)
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        text = "\n".join(["", "abuse figures (a normal client's injection latency):", *FIGURES])
        if capture is None:
            print(text)
        else:
            with capture.global_and_fixture_disabled():
                print(text, flush=True)


@pytest.fixture(scope="module")
def idle(relay: RelayProcess) -> Latency:
    figure = asyncio.run(idle_latency(relay.port))
    FIGURES.append(f"  idle:                      {figure}")
    return figure


def check_latency(name: str, probe: LatencyProbe, idle: Latency, relay: RelayProcess) -> None:
    during = probe.summary()
    bound = latency_bound(idle)
    FIGURES.append(f"  {name + ':':<26} {during}  (bound p95 < {bound:.0f} ms)")
    print(f"{name}: idle {idle} / during {during}")
    assert during.p95 < bound, f"{name}: p95 {during.p95:.1f} ms, idle {idle}"
    assert relay.alive(), relay.log()


async def first_lines(clients: list[Client], within: float) -> list[str]:
    async def first(client: Client) -> str:
        try:
            return await client.reply(within)
        except (TimeoutError, ConnectionError):
            return "<no reply>"

    return list(await asyncio.gather(*(first(client) for client in clients)))


# --- connection floods --------------------------------------------------------------------


async def test_burst_over_the_per_address_limit_gets_421_at_once(
    relay: RelayProcess, idle: Latency
) -> None:
    """150 connections at once from one address, default limit 100: 100 greetings and 50
    421 4.7.0 within a second, each 421 followed by the close; then the count is back."""
    async with LatencyProbe(relay.port) as probe:
        for _ in range(3):  # the counts must come back after each burst
            started = time.monotonic()
            async with many(relay.port, 150, ["127.0.0.1"]) as clients:
                answers = await first_lines(clients, within=5.0)
                elapsed = time.monotonic() - started
                greeted = [c for c, a in zip(clients, answers, strict=True) if a[:3] == "220"]
                refused = [c for c, a in zip(clients, answers, strict=True) if a[:3] == "421"]
                assert len(greeted) == PER_IP_CAP, sorted(set(answers))
                assert len(refused) == 150 - PER_IP_CAP, sorted(set(answers))
                assert {a for a in answers if a[:3] == "421"} == {
                    "421 4.7.0 relay.test Too many connections from your address, try again later"
                }
                assert elapsed < 3.0, f"the burst took {elapsed:.2f} s to be answered"
                for client in refused:
                    assert await client.at_eof(within=2.0)
                # Greeted sessions work while the others were refused.
                assert (await greeted[0].command("NOOP")).startswith("250")
            await asyncio.sleep(0.2)  # the closes reach relay
    check_latency("150 at once from one IP", probe, idle, relay)


async def test_flood_beyond_the_listener_cap(relay: RelayProcess, idle: Latency) -> None:
    """120 connections at once from 12 addresses on a listener with max_connections 40:
    40 greetings, 80 421 4.7.0 at once; the other listener is not affected."""
    sources = [f"127.0.0.{50 + n}" for n in range(12)]
    async with LatencyProbe(relay.port) as probe:
        for _ in range(2):
            async with many(relay.capped_port, 120, sources) as clients:
                answers = await first_lines(clients, within=5.0)
                codes = [a[:3] for a in answers]
                assert codes.count("220") == LISTENER_CAP, sorted(set(answers))
                assert codes.count("421") == 120 - LISTENER_CAP, sorted(set(answers))
                assert {a for a in answers if a[:3] == "421"} == {
                    "421 4.7.0 relay.test Too many connections, try again later"
                }
            await asyncio.sleep(0.2)
    check_latency("120 at a 40-cap listener", probe, idle, relay)


async def test_many_short_floods_leave_no_descriptors(relay: RelayProcess) -> None:
    """After floods, relay's open descriptors come back to what they were."""
    await asyncio.sleep(0.5)
    before = relay.open_fds()
    for _ in range(3):
        async with many(relay.port, 200, ["127.0.0.2", "127.0.0.3"]) as clients:
            await first_lines(clients, within=5.0)
    for _ in range(100):  # up to 10 s for the closes to reach relay
        if relay.open_fds() <= before + 2:
            break
        await asyncio.sleep(0.1)
    assert relay.open_fds() <= before + 2, (before, relay.open_fds())


# --- slow clients ---------------------------------------------------------------------------


async def test_clients_sending_one_byte_per_second(relay: RelayProcess, idle: Latency) -> None:
    """30 clients each trickle "NOOP slow" one byte a second (inside the 60 s idle
    timeout): each gets its answer when the line is complete, and nobody else waits."""
    line = b"NOOP slow\r\n"
    clients = [await Client.connect(relay.port, f"127.0.0.{20 + n % 5}") for n in range(30)]
    try:
        for client in clients:
            assert (await client.reply()).startswith("220")
        async with LatencyProbe(relay.port) as probe:
            for octet in range(len(line)):
                for client in clients:
                    await client.send(line[octet : octet + 1])
                await asyncio.sleep(1.0)
        answers = await first_lines(clients, within=5.0)
        assert answers == ["250 2.0.0 OK"] * len(clients)
    finally:
        for client in clients:
            client.close()
    check_latency("30 one-byte-a-second", probe, idle, relay)


# --- thousands of RCPTs ------------------------------------------------------------------------


async def test_thousands_of_recipients(relay: RelayProcess, idle: Latency) -> None:
    """5000 RCPTs pipelined in one transaction: the first 100 (the default limit) 250, each
    other 452 4.5.3; the message is taken for the 100; the session goes on."""
    count = 5000
    client = await Client.connect(relay.port, "127.0.0.30")
    try:
        await client.reply()
        await client.command("EHLO many.test")
        async with LatencyProbe(relay.port) as probe:
            for _ in range(2):
                assert (await client.command("MAIL FROM:<s@example.test>")).startswith("250")
                await client.send(
                    b"".join(b"RCPT TO:<r%d@example.com>\r\n" % n for n in range(count))
                )
                answers = [await client.reply() for _ in range(count)]
                assert [a[:9] for a in answers] == ["250 2.1.5"] * 100 + ["452 4.5.3"] * (
                    count - 100
                )
                assert (await client.command("DATA")).startswith("354")
                await client.send(b"Subject: many\r\n\r\nhi\r\n.\r\n")
                assert (await client.reply()).startswith("250 2.0.0")
        assert (await client.command("NOOP")).startswith("250")
    finally:
        client.close()
    check_latency("5000 RCPTs x2", probe, idle, relay)


# --- 100 MB against a 10 MB limit ----------------------------------------------------------------


LINE = b"x" * 998 + b"\r\n"
HUNDRED_MB = 100 * 1024 * 1024


async def stream(client: Client, total: int) -> None:
    block = LINE * 1024  # ~1 MB
    sent = 0
    while sent < total:
        await client.send(block)
        sent += len(block)


async def test_hundred_megabytes_against_a_ten_megabyte_limit(
    relay: RelayProcess, idle: Latency
) -> None:
    """100 MB of DATA (no SIZE given) and a 100 MB BDAT against max_message_size 10 MB:
    each read to its end and answered 552 5.3.4, without relay holding it in memory (its
    peak RSS grows by less than twice the limit); SIZE=100 MB is refused at MAIL."""
    _, peak_before = relay.memory()
    client = await Client.connect(relay.port, "127.0.0.31")
    try:
        await client.reply()
        await client.command("EHLO big.test")
        reply = await client.command(f"MAIL FROM:<s@example.test> SIZE={HUNDRED_MB}")
        assert reply.startswith("552 5.3.4"), reply
        async with LatencyProbe(relay.port) as probe:
            started = time.monotonic()
            assert (await client.command("MAIL FROM:<s@example.test>")).startswith("250")
            assert (await client.command("RCPT TO:<r@example.com>")).startswith("250")
            assert (await client.command("DATA")).startswith("354")
            await stream(client, HUNDRED_MB)
            await client.send(b".\r\n")
            reply = await client.reply(within=60)
            assert reply.startswith("552 5.3.4"), reply
            data_seconds = time.monotonic() - started
            assert (await client.command("MAIL FROM:<s@example.test>")).startswith("250")
            assert (await client.command("RCPT TO:<r@example.com>")).startswith("250")
            size = len(LINE) * 1024 * 100
            await client.send(b"BDAT %d LAST\r\n" % size)
            await stream(client, size)
            reply = await client.reply(within=60)
            assert reply.startswith("552 5.3.4"), reply
        assert (await client.command("NOOP")).startswith("250")
    finally:
        client.close()
    _, peak_after = relay.memory()
    growth = peak_after - peak_before
    FIGURES.append(
        f"  100 MB DATA read in {data_seconds:.1f} s; relay's peak RSS grew by "
        f"{growth / 2**20:.1f} MB (limit {MAX_MESSAGE_SIZE / 2**20:.0f} MB)"
    )
    assert growth < 2 * MAX_MESSAGE_SIZE, f"peak RSS grew by {growth / 2**20:.1f} MB"
    check_latency("100 MB DATA + BDAT", probe, idle, relay)


# --- bad octets in commands ----------------------------------------------------------------------

# (command line as sent, reply it gets) in an EHLO session, MAIL first where the line is
# a RCPT; CRLF is added.
BAD_OCTETS: list[tuple[bytes, str]] = [
    (b"MAIL FROM:<a\x00b@example.test>", "553 5.1.3"),
    (b"MAIL FROM:<a@exa\x00mple.test>", "553 5.1.3"),
    (b"MAIL FROM:<a@example.test> SIZE=1\x00", "501 5.5.4"),
    (b"MAIL FROM:<a\rb@example.test>", "553 5.1.3"),
    (b"MAIL FROM:<a@example.test> ENV\rID=x", "555 5.5.4"),
    (b"MAIL FROM:<j\xc3\xb6@example.test>", "553 5.6.7"),  # UTF-8 without SMTPUTF8
    (b"MAIL FROM:<j\xf6@example.test>", "500 5.5.2"),  # not UTF-8 at all
    (b"MAIL FROM:<a@example.test> ENVID=\xc3\xb6", "501 5.5.4"),
    (b"MAIL FROM:<a@example.test> \xc3\xb6=1", "501 5.5.4"),
    (b"MAIL FROM:<a@example.test> SIZE=\xc3\xb6", "501 5.5.4"),
    (b"\x00MAIL FROM:<a@example.test>", "500 5.5.1"),
    (b"RCPT TO:<r\x00@example.com>", "553 5.1.3"),
    (b"RCPT TO:<r@example.com> NOTIFY=NEVER\x00", "501 5.5.4"),
    (b"RCPT TO:<r\xc3\xb6@example.com>", "553 5.6.7"),
    (b"RCPT TO:<r@example.com> NOTIFY=\xc3\xb6", "501 5.5.4"),
    (b"RCPT TO:<r@example.com> ORCPT=rfc822;\xc3\xb6@x.test", "501 5.5.4"),
    (b"VRFY a\x00b\rc", "502 5.5.1"),
]


@pytest.mark.parametrize(("line", "expected"), BAD_OCTETS, ids=[repr(c) for c, _ in BAD_OCTETS])
async def test_bad_octets_in_addresses_and_parameters(
    relay: RelayProcess, line: bytes, expected: str
) -> None:
    """Each gets its reply (printable ASCII only: nothing of the client's control octets
    comes back), and the session goes on to send a message."""
    client = await Client.connect(relay.port, "127.0.0.32")
    try:
        await client.reply()
        await client.command("EHLO octets.test")
        if line.startswith(b"RCPT"):
            assert (await client.command("MAIL FROM:<s@example.test>")).startswith("250")
        await client.send(line + b"\r\n")
        raw = await asyncio.wait_for(client.reader.readline(), 10)
        reply = raw.decode("ascii")
        assert reply.startswith(expected), reply
        assert all(32 <= ord(c) < 127 for c in reply.rstrip("\r\n")), reply
        await client.command("RSET")
        assert (await client.command("MAIL FROM:<s@example.test>")).startswith("250")
        assert (await client.command("RCPT TO:<r@example.com>")).startswith("250")
        assert (await client.command("DATA")).startswith("354")
        await client.send(b"Subject: after\r\n\r\nok\r\n.\r\n")
        assert (await client.reply()).startswith("250 2.0.0")
    finally:
        client.close()


async def test_bare_line_feed_splits_a_command_line(relay: RelayProcess) -> None:
    """A LF inside a command ends it (as Postfix reads commands): two refusals, no
    address made of the two halves."""
    client = await Client.connect(relay.port, "127.0.0.32")
    try:
        await client.reply()
        await client.command("EHLO octets.test")
        await client.command("MAIL FROM:<s@example.test>")
        await client.send(b"RCPT TO:<r\n@example.com>\r\n")
        assert (await client.reply()).startswith("553 5.1.3")
        assert (await client.reply()).startswith("500 5.5.1")
        assert (await client.command("NOOP")).startswith("250")
    finally:
        client.close()


async def test_all_abuse_at_once(relay: RelayProcess, idle: Latency) -> None:
    """Floods, slow clients, a big message and many RCPTs together, for 8 s: the probe
    stays within the bound and relay is alive after."""

    async def floods() -> None:
        for _ in range(4):
            async with many(relay.port, 150, ["127.0.0.40"]) as clients:
                answers = await first_lines(clients, within=5.0)
                assert [a[:3] for a in answers].count("421") == 50
            await asyncio.sleep(0.5)

    async def slow() -> None:
        client = await Client.connect(relay.port, "127.0.0.41")
        try:
            await client.reply()
            for octet in b"NOOP\r\n":
                await client.send(bytes([octet]))
                await asyncio.sleep(1.0)
            assert (await client.reply()).startswith("250")
        finally:
            client.close()

    async def big() -> None:
        client = await Client.connect(relay.port, "127.0.0.42")
        try:
            await client.reply()
            await client.command("EHLO big.test")
            await client.command("MAIL FROM:<s@example.test>")
            await client.command("RCPT TO:<r@example.com>")
            await client.command("DATA")
            await stream(client, 30 * 1024 * 1024)
            await client.send(b".\r\n")
            assert (await client.reply(within=60)).startswith("552 5.3.4")
        finally:
            client.close()

    async def recipients() -> None:
        client = await Client.connect(relay.port, "127.0.0.43")
        try:
            await client.reply()
            await client.command("EHLO many.test")
            await client.command("MAIL FROM:<s@example.test>")
            await client.send(b"".join(b"RCPT TO:<r%d@example.com>\r\n" % n for n in range(3000)))
            answers = [await client.reply() for _ in range(3000)]
            assert sum(a.startswith("452") for a in answers) == 2900
        finally:
            client.close()

    async with LatencyProbe(relay.port) as probe:
        await asyncio.gather(floods(), slow(), big(), recipients())
    check_latency("all of it at once", probe, idle, relay)
