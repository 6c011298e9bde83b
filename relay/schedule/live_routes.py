"""The route settings dispatch uses: the configured ones (a RouteSettingsSource) with
adaptive delivery's live values applied, cached until either changes; and adaptive's
blackhole holds."""

from __future__ import annotations

from relay.schedule.adaptive_link import AdaptiveLink
from relay.schedule.route_settings import RouteSettings, RouteSettingsSource


class LiveRoutes:
    def __init__(self, routes: RouteSettingsSource, adaptive: AdaptiveLink | None = None) -> None:
        self.routes = routes
        self.adaptive = adaptive
        # (binding, domain) -> (the configured settings, adaptive's version, the live settings)
        self._live: dict[tuple[str, str], tuple[RouteSettings, int, RouteSettings]] = {}

    def get(self, binding: str, domain: str) -> RouteSettings:
        base = self.routes.get(binding, domain)
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

    def reload(self, routes: RouteSettingsSource) -> None:
        """A new configuration's route settings."""
        self.routes = routes
        if self.adaptive is not None:
            self.adaptive.reload(routes)
        self._live.clear()
