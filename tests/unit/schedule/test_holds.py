"""Tenant and campaign holds in the queue core: a held sender's jobs are parked aside (no
attempt, no failure) while other senders' mail to the same domain, on the same bindings,
flows; they come back when the hold ends or is lifted."""

from __future__ import annotations

from relay.bind.build import build_selector
from relay.bind.suspensions import SuspensionTable
from relay.clock import ManualClock
from relay.config import loads
from relay.schedule.actions import WakeAt
from relay.schedule.jobs import Job
from relay.schedule.live_routes import LiveRoutes
from relay.schedule.providers import ProviderDirectory
from relay.schedule.queues import Queues
from relay.wiring import compile_settings

T0 = 1_000_000.0
CONF = """
binding_group "g" {
  binding "b1" { bind_address = 127.0.0.2 }
  binding "b2" { bind_address = 127.0.0.3 }
}
provider "google" { match_domain = ( "gmail.com" "googlemail.com" ) }
"""


class Core:
    def __init__(self) -> None:
        settings = compile_settings(loads(CONF))
        selector, _ = build_selector(
            settings.groups, settings.bindings.values(), SuspensionTable(), plumbed=lambda a: True
        )
        self.clock = ManualClock(T0)
        self.q = Queues(
            selector, LiveRoutes(settings.routes), providers=ProviderDirectory(settings.providers)
        )

    def run(self) -> float:
        for _ in range(1000):
            actions = self.q.step(self.clock.now())
            last = actions[-1]
            assert isinstance(last, WakeAt)
            if last.at > self.clock.now():
                return last.at
        raise AssertionError("does not settle")

    def placed(self) -> list[tuple[str, str, str | None]]:
        return sorted(
            (rq.binding, job.domain, job.tenant) for rq in self.q._ready.values() for job in rq.jobs
        )


_n = iter(range(1_000_000))


def job(domain: str, tenant: str | None, campaign: str | None = None, **kw: str) -> Job:
    n = next(_n)
    return Job(
        f"m{n}",
        "s@x.test",
        "g",
        kw.get("binding"),
        domain,
        T0,
        [(0, f"r{n}@{domain}", 0)],
        due=T0,
        tenant=tenant,
        campaign=campaign,
    )


async def test_a_tenant_x_domain_hold_stops_only_that_tenant_to_that_domain() -> None:
    core = Core()
    core.q.holds.hold("tenant", "a", "one.test", T0 + 600, "operator")
    for tenant in ("a", "a", "b", "b"):
        core.q.schedule(job("one.test", tenant))
    core.q.schedule(job("two.test", "a"))
    core.run()
    assert [t for _, d, t in core.placed() if d == "one.test"] == ["b", "b"]
    assert ("two.test", "a") in {(d, t) for _, d, t in core.placed()}
    (row,) = core.q.held_rows()
    assert (row.kind, row.subject, row.target, row.queued) == ("tenant", "a", "one.test", 2)
    assert core.q.sizes().held == 2
    await core.clock.advance(600)  # the hold ends: the parked jobs come back
    core.run()
    assert [t for _, d, t in core.placed() if d == "one.test"].count("a") == 2
    assert core.q.held_rows() == [] and core.q.sizes().held == 0


def test_campaign_hold_and_release() -> None:
    core = Core()
    core.q.holds.hold("campaign", "spring", "one.test", T0 + 600, "content rejected")
    core.q.schedule(job("one.test", "a", "spring"))
    core.q.schedule(job("one.test", "a", "autumn"))
    core.run()
    assert len(core.placed()) == 1
    assert core.q.holds.release("campaign", "spring", "one.test")
    core.q.release()
    core.run()
    assert len(core.placed()) == 2


def test_a_tenant_x_binding_x_domain_hold_moves_the_tenant_to_its_other_bindings() -> None:
    core = Core()
    core.q.holds.hold("tenant", "a", "one.test", T0 + 600, "ip-specific", binding="b1")
    for _ in range(4):
        core.q.schedule(job("one.test", "a"))
        core.q.schedule(job("one.test", "b"))
    core.run()
    placed = core.placed()
    assert {b for b, _, t in placed if t == "a"} == {"b2"}
    assert len([t for _, _, t in placed if t == "b"]) == 4  # b's mail, b1 included, flows
    # With its binding named, the tenant's message waits for the hold.
    core.q.schedule(job("one.test", "a", binding="b1"))
    core.run()
    assert core.q.sizes().held == 1


def test_a_tenant_x_provider_hold_covers_every_domain_of_the_provider() -> None:
    core = Core()
    core.q.holds.hold("tenant", "a", "provider:google", T0 + 600, "operator")
    core.q.schedule(job("gmail.com", "a"))
    core.q.schedule(job("googlemail.com", "a"))
    core.q.schedule(job("gmail.com", "b"))
    core.q.schedule(job("other.test", "a"))
    core.run()
    assert {(d, t) for _, d, t in core.placed()} == {("gmail.com", "b"), ("other.test", "a")}
    assert core.q.sizes().held == 2


def test_held_jobs_can_be_taken_by_an_operator() -> None:
    core = Core()
    core.q.holds.hold("tenant", "a", "one.test", T0 + 600, "operator")
    core.q.schedule(job("one.test", "a"))
    core.run()
    taken = core.q.take(lambda j: j.tenant == "a")
    assert len(taken) == 1 and core.q.sizes().held == 0
