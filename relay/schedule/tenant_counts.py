"""Recipient outcomes per tenant (and per campaign), for the `relay_tenant_recipients`
(`relay_campaign_recipients`) metric. Pure.

A label value per tenant would let injected X-Tenant headers grow the metric without bound,
so the tenants counted by name are the configured ones (`tenant "t" {}` stanzas) and the
first MAX_SEEN others seen; mail of any further tenant counts under OTHER. Mail without a
tenant is not counted here (`relay_recipients` has every recipient). Campaigns are counted
the same way (no campaign is configured: the first MAX_SEEN by name).
"""

from __future__ import annotations

from collections.abc import Collection

MAX_SEEN = 100  # unconfigured tenants counted by name (beyond them: OTHER)
OTHER = "_other"
OUTCOMES = ("delivered", "deferred", "failed")


class TenantCounts:
    def __init__(self, configured: Collection[str] = (), max_seen: int = MAX_SEEN) -> None:
        self.configured = frozenset(configured)
        self.max_seen = max_seen
        self._seen = 0  # unconfigured tenants with a row of their own
        self.rows: dict[str, dict[str, int]] = {}

    def configure(self, configured: Collection[str]) -> None:
        """A new configuration's tenant stanzas (rows so far are kept)."""
        self.configured = frozenset(configured)

    def add(self, tenant: str | None, outcome: str, n: int = 1) -> None:
        if tenant is None:
            return
        row = self.rows.get(tenant)
        if row is None:
            if tenant not in self.configured:
                if self._seen >= self.max_seen:
                    tenant = OTHER
                    row = self.rows.get(OTHER)
                else:
                    self._seen += 1
            if row is None:
                row = self.rows[tenant] = dict.fromkeys(OUTCOMES, 0)
        row[outcome] += n

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {tenant: dict(row) for tenant, row in self.rows.items()}
