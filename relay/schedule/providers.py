"""Providers: destinations grouped by who hosts them (MX rollup). Pure: no DNS here.

A `provider "google" { match_mx = ( "*.google.com" ) match_domain = ( "gmail.com" ) }`
stanza compiles to a `ProviderRule`. A domain is in the first provider (in configuration
order) whose `match_domain` matches its name; otherwise in the first whose `match_mx`
matches every one of its MX hosts; otherwise in none. The limits of a provider apply per
binding x provider, on top of the per binding x domain ones.

The provider of a domain must be known before a connection for it opens, so the queue core
asks for it: `ProviderDirectory.lookup` answers from the names alone when it can
(`match_domain`, or no rule uses `match_mx`), from its cache of MX answers otherwise, and
says NEEDED when the domain's MX hosts must be looked up first (the owner resolves them and
reports through `learn`). Answers are kept for `ttl` seconds, then looked up again while the
known provider keeps applying; a failed lookup is retried after `retry` seconds, the domain
counting as in no provider meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final

from relay.config.values import Throttle
from relay.schedule.limits import Cap
from relay.schedule.route_settings import ThrottleRef
from relay.schedule.warmup import WarmupPlan

PROVIDER_TTL = 3600.0  # an MX-derived provider is looked up again after this long
PROVIDER_RETRY = 60.0  # after a failed MX lookup


@dataclass(frozen=True, slots=True)
class ProviderRule:
    name: str
    match_mx: tuple[str, ...] = ()  # lower-case glob patterns
    match_domain: tuple[str, ...] = ()
    max_connections: int | None = None  # per binding x provider; None: no cap
    message_throttle: Throttle | None = None  # per binding x provider
    connection_throttle: Throttle | None = None
    adaptive_rollup: bool = False
    # warmup_schedule / warmup_start in the stanza: caps per binding x provider (warmup.py)
    warmup_steps: tuple[tuple[int, float], ...] = ()
    warmup_start: float = 0.0

    def matches_domain(self, domain: str) -> bool:
        return any(fnmatchcase(domain, p) for p in self.match_domain)

    def matches_mx(self, hosts: Sequence[str]) -> bool:
        return (
            bool(hosts)
            and bool(self.match_mx)
            and all(any(fnmatchcase(host, p) for p in self.match_mx) for host in hosts)
        )


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """What a binding x provider adds to a binding x domain's route settings."""

    provider: str
    caps: tuple[Cap, ...]
    message_throttle: ThrottleRef | None
    connection_throttle: ThrottleRef | None
    warmup: WarmupPlan | None = None  # the binding x provider warm-up


class _Needed:
    def __repr__(self) -> str:
        return "NEEDED"


NEEDED: Final = _Needed()  # lookup(): resolve the domain's MX hosts first
# Adaptive delivery's "domain" for a provider with adaptive_provider_rollup: a colon never
# occurs in a domain name, so the key cannot collide with one.
ROLLUP_PREFIX = "provider:"


def rollup_name(key: str) -> str | None:
    """The provider a rollup key stands for; None for a plain domain."""
    return key[len(ROLLUP_PREFIX) :] if key.startswith(ROLLUP_PREFIX) else None


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def classify(
    rules: Sequence[ProviderRule], domain: str, mx_hosts: Sequence[str] | None
) -> str | None:
    """The provider of `domain` given its MX hosts (None: not looked up, or the lookup
    failed: only match_domain applies)."""
    domain = _norm(domain)
    for rule in rules:
        if rule.matches_domain(domain):
            return rule.name
    if mx_hosts:
        hosts = [_norm(h) for h in mx_hosts]
        for rule in rules:
            if rule.matches_mx(hosts):
                return rule.name
    return None


class ProviderDirectory:
    """Which provider each domain is in, as far as known (see the module docstring)."""

    def __init__(self, rules: Sequence[ProviderRule] = ()) -> None:
        self.rules: tuple[ProviderRule, ...] = tuple(rules)
        self._by_name = {rule.name: rule for rule in self.rules}
        self._needs_mx = any(rule.match_mx for rule in self.rules)
        # domain -> (provider or None, look up again at, MX hosts as last seen)
        self._known: dict[str, tuple[str | None, float, tuple[str, ...]]] = {}
        self._limits: dict[tuple[str, str], ProviderLimits] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rule(self, name: str) -> ProviderRule | None:
        return self._by_name.get(name)

    def lookup(self, domain: str, now: float) -> str | _Needed | None:
        """The domain's provider, None (in none), or NEEDED (look its MX hosts up first).
        A known provider past its ttl is returned still; `stale` says to refresh it."""
        if not self.rules:
            return None
        found = self._known.get(domain)
        if found is not None:
            return found[0]
        by_name = classify(self.rules, domain, None)
        if by_name is not None or not self._needs_mx:
            self._known[domain] = (by_name, float("inf"), ())
            return by_name
        return NEEDED

    def stale(self, domain: str, now: float) -> bool:
        found = self._known.get(domain)
        return found is not None and found[1] <= now

    def learn(
        self,
        domain: str,
        mx_hosts: Sequence[str] | None,
        now: float,
        ttl: float = PROVIDER_TTL,
    ) -> str | None:
        """Record the domain's MX hosts (None: the lookup failed); returns its provider."""
        provider = classify(self.rules, domain, mx_hosts)
        again = now + (ttl if mx_hosts is not None else PROVIDER_RETRY)
        self._known[domain] = (provider, again, tuple(mx_hosts or ()))
        return provider

    def limits(self, binding: str, provider: str) -> ProviderLimits | None:
        """The binding x provider limits (per binding: each binding has its own count)."""
        key = (binding, provider)
        found = self._limits.get(key)
        if found is None:
            rule = self._by_name.get(provider)
            if rule is None:
                return None
            caps: tuple[Cap, ...] = ()
            if rule.max_connections is not None:
                caps = ((("provider", binding, provider), rule.max_connections),)
            scope = (binding, provider)
            found = ProviderLimits(
                provider,
                caps,
                None
                if rule.message_throttle is None
                else (("provider_messages", scope), rule.message_throttle),
                None
                if rule.connection_throttle is None
                else (("provider_connections", scope), rule.connection_throttle),
                None
                if not rule.warmup_steps
                else WarmupPlan(
                    (binding, ROLLUP_PREFIX + provider.lower()),
                    False,
                    rule.warmup_start,
                    rule.warmup_steps,
                ),
            )
            self._limits[key] = found
        return found

    def adaptive_key(self, domain: str) -> str:
        """What adaptive delivery keys binding x `domain` by: the provider's rollup key
        when its provider has adaptive_provider_rollup, else the domain itself."""
        if not self.rules:
            return domain
        found = self._known.get(domain)
        if found is None or found[0] is None:
            return domain
        rule = self._by_name.get(found[0])
        if rule is None or not rule.adaptive_rollup:
            return domain
        return ROLLUP_PREFIX + rule.name.lower()

    def domains_of(self, provider: str) -> list[str]:
        """The domains known to be in `provider` (compared case-insensitively)."""
        name = provider.lower()
        return [d for d, entry in self._known.items() if (entry[0] or "").lower() == name]

    def known(self) -> dict[str, str | None]:
        """Every domain classified so far -> its provider (for the admin API)."""
        return {domain: entry[0] for domain, entry in sorted(self._known.items())}

    def mx_hosts(self, domain: str) -> tuple[str, ...]:
        found = self._known.get(domain)
        return found[2] if found is not None else ()
