"""Outcomes per tenant (schedule/tenant_counts.py): configured tenants always by name, the
first MAX_SEEN others by name, the rest under OTHER; mail without a tenant not counted."""

from __future__ import annotations

from relay.schedule.tenant_counts import OTHER, TenantCounts


def test_tenants_are_counted_by_name_up_to_the_cap() -> None:
    counts = TenantCounts(["acme"], max_seen=2)
    counts.add("t1", "delivered")
    counts.add("t2", "failed")
    counts.add("t3", "delivered")  # a third unconfigured tenant: OTHER
    counts.add("t4", "deferred")
    counts.add("acme", "delivered")  # configured: by name even past the cap
    counts.add("acme", "delivered")
    counts.add("t1", "delivered")  # already has a row
    counts.add(None, "delivered")
    assert counts.snapshot() == {
        "t1": {"delivered": 2, "deferred": 0, "failed": 0},
        "t2": {"delivered": 0, "deferred": 0, "failed": 1},
        OTHER: {"delivered": 1, "deferred": 1, "failed": 0},
        "acme": {"delivered": 2, "deferred": 0, "failed": 0},
    }
