"""The route policy dispatch uses: the configured one (PolicyCache) with adaptive delivery's
live values applied, cached until either changes; and adaptive's blackhole holds."""

from __future__ import annotations

from relay.config.model import Config
from relay.schedule.adaptive_link import AdaptiveLink
from relay.schedule.policy import PolicyCache, RoutePolicy


class LivePolicies:
    def __init__(self, policies: PolicyCache, adaptive: AdaptiveLink | None = None) -> None:
        self.policies = policies
        self.adaptive = adaptive
        # (binding, domain) -> (the configured policy, adaptive's version, the live policy)
        self._live: dict[tuple[str, str], tuple[RoutePolicy, int, RoutePolicy]] = {}

    def get(self, binding: str, domain: str) -> RoutePolicy:
        base = self.policies.get(binding, domain)
        if self.adaptive is None:
            return base
        key = (binding, domain)
        version = self.adaptive.version(binding, domain)
        cached = self._live.get(key)
        if cached is not None and cached[0] is base and cached[1] == version:
            return cached[2]
        policy = self.adaptive.effective(base)
        self._live[key] = (base, version, policy)
        return policy

    def held(self, binding: str, domain: str, now: float) -> str | None:
        if self.adaptive is None:
            return None
        return self.adaptive.blackholed(binding, domain, now)

    def reload(self, config: Config) -> None:
        self.policies.reload(config)
        if self.adaptive is not None:
            self.adaptive.reload(config)
        self._live.clear()
