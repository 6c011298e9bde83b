"""Provider limits (MX rollup): classification, and the queue core's provider dimension:
a domain's mail waits for its provider, then counts against binding x provider limits."""

from __future__ import annotations

import pytest

from relay.bind.build import build_selector
from relay.bind.suspensions import SuspensionTable
from relay.clock import ManualClock
from relay.config import loads
from relay.config.errors import ConfigError
from relay.schedule.actions import Action, OpenConnection, ResolveProvider, Send, Wait, WakeAt
from relay.schedule.jobs import Job
from relay.schedule.live_routes import LiveRoutes
from relay.schedule.providers import NEEDED, PROVIDER_RETRY, ProviderDirectory, ProviderRule
from relay.schedule.queues import Queues
from relay.schedule.ready import Connection
from relay.wiring import compile_settings

T0 = 1_000_000.0
GOOGLE = ProviderRule("google", match_mx=("*.google.com",), match_domain=("gmail.com",))

CONF = """
binding_group "g" {
  binding "b1" { bind_address = 127.0.0.2 }
  binding "b2" { bind_address = 127.0.0.3 }
}
provider "google" {
  match_mx = ( "*.google.com" "*.googlemail.com" )
  match_domain = ( "gmail.com" )
  %s
}
"""


def test_classification_by_name_then_by_every_mx_host() -> None:
    rules = [GOOGLE, ProviderRule("ms", match_mx=("*.outlook.com",))]
    directory = ProviderDirectory(rules)
    assert directory.lookup("gmail.com", T0) == "google"  # by name: no lookup
    assert directory.lookup("corp.test", T0) is NEEDED
    assert directory.learn("corp.test", ["aspmx.l.google.com", "alt1.aspmx.l.google.com"], T0)
    assert directory.lookup("corp.test", T0) == "google"
    # One MX host elsewhere: not all hosted by the provider.
    assert directory.learn("mixed.test", ["aspmx.l.google.com", "mx.mixed.test"], T0) is None
    assert directory.learn("o.test", ["o-test.mail.protection.outlook.com"], T0) == "ms"
    assert directory.learn("gone.test", (), T0) is None  # NXDOMAIN / null MX: none
    assert directory.known()["corp.test"] == "google"


def test_without_mx_rules_nothing_waits_for_dns() -> None:
    directory = ProviderDirectory([ProviderRule("y", match_domain=("*.yahoo.test",))])
    assert directory.lookup("a.yahoo.test", T0) == "y"
    assert directory.lookup("other.test", T0) is None
    assert not ProviderDirectory()


def test_a_failed_lookup_is_retried_and_an_answer_refreshed() -> None:
    directory = ProviderDirectory([GOOGLE])
    directory.learn("corp.test", None, T0)  # tempfail: in no provider for now
    assert directory.lookup("corp.test", T0) is None
    assert not directory.stale("corp.test", T0 + PROVIDER_RETRY - 1)
    assert directory.stale("corp.test", T0 + PROVIDER_RETRY)


def test_config_provider_stanza_compiles_and_needs_a_match() -> None:
    limits = "max_outbound_connections = 2\noutbound_throttle_messages = 10/60"
    settings = compile_settings(loads(CONF % limits))
    (rule,) = settings.providers
    assert rule.name == "google"
    assert rule.match_mx == ("*.google.com", "*.googlemail.com")
    assert rule.max_connections == 2
    assert rule.message_throttle is not None and rule.message_throttle.count == 10
    with pytest.raises(ConfigError) as err:
        loads('provider "p" { max_outbound_connections = 1 }')
    assert "needs match_mx or match_domain" in str(err.value)
    with pytest.raises(ConfigError) as err:
        loads('binding "b" { provider "p" { match_domain = ( "x" ) } }')
    assert "provider" in str(err.value)


class Core:
    def __init__(self, extra: str = "") -> None:
        conf = CONF % (extra or "max_outbound_connections = 2")
        settings = compile_settings(loads(conf))
        selector, _ = build_selector(
            settings.groups, settings.bindings.values(), SuspensionTable(), plumbed=lambda a: True
        )
        self.clock = ManualClock(T0)
        self.q = Queues(
            selector, LiveRoutes(settings.routes), providers=ProviderDirectory(settings.providers)
        )

    def step(self) -> list[Action]:
        actions = self.q.step(self.clock.now())
        assert isinstance(actions[-1], WakeAt)
        return actions[:-1]

    def run(self) -> list[Action]:
        """Step until nothing more is placed."""
        out: list[Action] = []
        for _ in range(100):
            actions = self.q.step(self.clock.now())
            out += actions[:-1]
            last = actions[-1]
            assert isinstance(last, WakeAt)
            if last.at > self.clock.now():
                return out
        raise AssertionError("does not settle")


_n = iter(range(1_000_000))


def job(domain: str, binding: str | None = "b1") -> Job:
    n = next(_n)
    return Job(f"m{n}", "s@x.test", "g", binding, domain, T0, [(0, f"r{n}@{domain}", 0)], due=T0)


def opened(actions: list[Action]) -> list[Connection]:
    return [a.connection for a in actions if isinstance(a, OpenConnection)]


def test_mail_waits_for_its_provider_then_shares_the_binding_x_provider_cap() -> None:
    core = Core()
    for domain in ("one.test", "two.test"):
        for _ in range(20):
            core.q.schedule(job(domain))
    actions = core.run()
    asked = [a.domain for a in actions if isinstance(a, ResolveProvider)]
    assert sorted(asked) == ["one.test", "two.test"]  # asked once each
    assert opened(actions) == []  # no connection before the provider is known
    core.q.provider_learned("one.test", ["aspmx.l.google.com"], core.clock.now())
    core.q.provider_learned("two.test", ["alt2.aspmx.l.googlemail.com"], core.clock.now())
    conns = opened(core.run())
    # Each domain alone may open 32 (max_outbound_connections); together, 2 for google.
    assert len(conns) == 2
    assert core.q.policy("b1", "one.test").provider == "google"
    assert core.q.provider_of("two.test") == "google"
    # The cap is per binding: b2 has its own two.
    core.q.schedule(job("one.test", binding="b2"))
    assert len(opened(core.run())) == 1
    # A connection closing hands its slot to the other domain of the provider.
    for conn in conns:
        core.q.connection_opened(conn)
    first = conns[0]
    while isinstance(core.q.next_job(first, core.clock.now()), Send):
        pass  # (the jobs stay in flight: the test only counts connections)
    after = core.q.connection_closed(first, core.clock.now())
    assert len(opened(after)) == 1


def test_a_domain_outside_every_provider_keeps_only_its_own_limits() -> None:
    core = Core()
    for _ in range(3):
        core.q.schedule(job("solo.test"))
    core.run()
    core.q.provider_learned("solo.test", ["mx.solo.test"], core.clock.now())
    assert core.q.policy("b1", "solo.test").provider is None
    assert len(opened(core.run())) == 1


def test_provider_message_throttle_spans_its_domains() -> None:
    core = Core("outbound_throttle_messages = 2/60")
    core.q.schedule(job("gmail.com"))  # by name: no lookup
    core.q.schedule(job("gmail.com"))
    core.q.schedule(job("corp.test"))
    conns = opened(core.run())
    assert [c.domain for c in conns] == ["gmail.com"]  # known by name: it need not wait
    core.q.provider_learned("corp.test", ["aspmx.l.google.com"], core.clock.now())
    conns += opened(core.run())
    assert {c.domain for c in conns} == {"gmail.com", "corp.test"}
    now = core.clock.now()
    steps = []
    for conn in conns:
        core.q.connection_opened(conn)
        steps.append(core.q.next_job(conn, now))
        steps.append(core.q.next_job(conn, now))
    sends = [s for s in steps if isinstance(s, Send)]
    waits = [s for s in steps if isinstance(s, Wait)]
    assert len(sends) == 2  # two per minute for google, whichever domain
    assert waits and all(w.until == pytest.approx(now + 30) for w in waits)  # corp.test waits


async def test_provider_connection_throttle_and_reload() -> None:
    core = Core("outbound_throttle_connections = 1/60\nmax_outbound_connections = 10")
    core.q.schedule(job("gmail.com"))
    core.q.schedule(job("corp.test"))
    assert [c.domain for c in opened(core.run())] == ["gmail.com"]
    core.q.provider_learned("corp.test", ["aspmx.l.google.com"], core.clock.now())
    assert opened(core.run()) == []  # one connection a minute for b1 x google
    await core.clock.advance(59)
    assert opened(core.run()) == []
    await core.clock.advance(1)
    assert [c.domain for c in opened(core.run())] == ["corp.test"]
    # A reload without providers: the domains are in none, no cap, no lookup.
    settings = compile_settings(loads(CONF.split("provider")[0]))
    core.q.reload(core.q.selector, ProviderDirectory(settings.providers))
    assert core.q.policy("b1", "corp.test").provider is None


def test_a_rollup_suspension_stops_the_binding_for_every_domain_of_the_provider() -> None:
    core = Core("max_outbound_connections = 10\nadaptive_provider_rollup = true")
    directory = core.q.providers
    assert directory.adaptive_key("gmail.com") == "gmail.com"  # not classified yet
    core.q.schedule(job("gmail.com", binding=None))
    core.run()
    assert directory.adaptive_key("gmail.com") == "provider:google"
    core.q.selector.suspensions.suspend("b1", "provider:google", T0 + 600, "rollup")
    for _ in range(4):
        core.q.schedule(job("gmail.com", binding=None))
        core.q.schedule(job("corp.test", binding=None))
    core.q.schedule(job("solo.test", binding=None))
    core.run()
    core.q.provider_learned("corp.test", ["aspmx.l.google.com"], T0)
    core.q.provider_learned("solo.test", ["mx.solo.test"], T0)
    core.run()
    queued = {(r.binding, r.domain): r.queued for r in core.q.ready_rows()}
    # b1 keeps only the gmail.com job placed before the suspension; solo.test uses either.
    solo = [queued.pop(k) for k in list(queued) if k[1] == "solo.test"]
    assert solo == [1]
    assert queued == {("b1", "gmail.com"): 1, ("b2", "gmail.com"): 4, ("b2", "corp.test"): 4}
