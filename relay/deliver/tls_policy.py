"""The outbound TLS policy of one delivery attempt: MTA-STS (RFC 8461) chooses the MX hosts
and, in enforce mode, demands verified TLS; DANE (RFC 7672) decides the TLS verification
of each MX host that has usable TLSA records; each session is counted for TLS reporting
(RFC 8460).

`DeliveryTlsPolicy` is what `open_connection` asks per destination (`for_host`) and tells
about each session (`succeeded` / `failed`). The decisions are pure functions:
`sts_settings` (the stricter of the configuration and the policy's mode), `sts_hosts`
(enforce: only matching MX hosts), `enforce_verdict` (what enforce would have said) and
`classify_tls_failure` (an RFC 8460 result type for a failed STARTTLS).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from cryptography import x509

from relay.deliver.dane import DaneState, TlsaRecord, dane_for_host, names_match, verify_chain
from relay.deliver.dns import DnsResolver
from relay.deliver.mta_sts import Mode, Policy
from relay.deliver.route import Destination, Route
from relay.deliver.settings import DeliverySettings
from relay.deliver.sts_fetch import StsPolicies
from relay.deliver.tls_report import RESULT_TYPES, Session, TlsCounts

__all__ = [
    "DeliveryTlsPolicy",
    "HostRequirement",
    "OutboundTls",
    "classify_tls_failure",
    "enforce_verdict",
    "policy_lines",
    "sts_hosts",
    "sts_settings",
]


@dataclass(frozen=True, slots=True)
class HostRequirement:
    """What one MX host demands. `dane` non-empty: STARTTLS mandatory and the chain must
    match these records (no other verification, no plain-text fallback). `refuse`: do not
    deliver to this host now (the text says why; `result` is its RFC 8460 type)."""

    dane: tuple[TlsaRecord, ...] = ()
    refuse: str | None = None
    result: str | None = None


# ---- pure decisions ------------------------------------------------------------------


def sts_settings(settings: DeliverySettings, policy: Policy | None) -> DeliverySettings:
    """The stricter of the configuration and the policy (enable_mta_sts page): enforce is
    tls = required and tls_verify = host (no plain-text fallback); testing is at least
    tls = ifavailable; none (or no policy) leaves the configuration as it is."""
    if policy is None or policy.mode is Mode.NONE:
        return settings
    if policy.mode is Mode.ENFORCE:
        return replace(settings, tls="required", tls_verify="host", tls_ifavailable_fallback=False)
    if settings.tls == "no":
        return replace(settings, tls="ifavailable")
    return settings


def sts_hosts(route: Route, policy: Policy | None) -> Route:
    """Enforce: only the MX hosts the policy's mx patterns allow (possibly none)."""
    if policy is None or policy.mode is not Mode.ENFORCE:
        return route
    hosts = tuple(h for h in route.hosts if policy.allows(h.name))
    destinations = route.destinations
    if destinations is not None:
        destinations = tuple(d for d in destinations if policy.allows(d.mx_host))
    return replace(route, hosts=hosts, destinations=destinations)


def enforce_verdict(
    policy: Policy, mx_host: str, tls: bool, leaf: bytes | None, now: datetime.datetime
) -> str | None:
    """What enforce would have said of a session that went ahead (mode testing): None if
    it would have passed. The certificate chain's trust is not re-checked here (only
    when tls_verify asked the handshake for it): host name and validity are."""
    if not policy.allows(mx_host):
        return "validation-failure"
    if not tls:
        return "starttls-not-supported"
    if leaf is None:
        return "validation-failure"
    try:
        cert = x509.load_der_x509_certificate(leaf)
    except ValueError:
        return "validation-failure"
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return "certificate-expired"
    if not names_match(cert, (mx_host,)):
        return "certificate-host-mismatch"
    return None


def classify_tls_failure(detail: str) -> str:
    """An RFC 8460 result type for a failed STARTTLS, from the failure's detail text."""
    head = detail.split(":", 1)[0].strip()
    if head in RESULT_TYPES:  # relay's own checks (DANE) name the type first
        return head
    text = detail.lower()
    if "offers no starttls" in text or "starttls refused" in text:
        return "starttls-not-supported"
    if "expired" in text:
        return "certificate-expired"
    if "host name mismatch" in text or "hostname mismatch" in text:
        return "certificate-host-mismatch"
    if "certificate verify failed" in text or "self-signed" in text or "unable to get" in text:
        return "certificate-not-trusted"
    return "validation-failure"


def policy_lines(policy: Policy) -> tuple[str, ...]:
    """The policy as RFC 8460's policy-string: its lines."""
    return (
        "version: STSv1",
        f"mode: {policy.mode.value}",
        *(f"mx: {mx}" for mx in policy.mx),
        f"max_age: {policy.max_age}",
    )


# ---- the policy of one attempt ---------------------------------------------------------------


class DeliveryTlsPolicy:
    """One delivery attempt's TLS policy for a domain (see the module docstring)."""

    def __init__(
        self,
        domain: str,
        resolver: DnsResolver,
        now: Callable[[], float],
        *,
        sts: Policy | None = None,
        sts_enabled: bool = True,
        dane: bool = False,
        mx_authenticated: bool = False,
        counts: TlsCounts | None = None,
        sending_ip: str = "",
    ) -> None:
        self.domain = domain
        self.resolver = resolver
        self.now = now
        self.sts = sts if sts is not None and sts.mode is not Mode.NONE else None
        self.sts_enabled = sts_enabled
        self.dane = dane
        self.mx_authenticated = mx_authenticated
        self.counts = counts
        self.sending_ip = sending_ip
        self._dane_hosts: set[str] = set()

    async def for_host(self, destination: Destination) -> HostRequirement:
        if not self.dane:
            return HostRequirement()
        found = await dane_for_host(
            self.resolver, destination.mx_host, destination.port, self.mx_authenticated
        )
        if found.state is DaneState.USABLE:
            self._dane_hosts.add(destination.mx_host)
            return HostRequirement(dane=found.records)
        if found.state is DaneState.TEMPFAIL:
            self._dane_hosts.add(destination.mx_host)
            return HostRequirement(refuse=found.detail, result=found.failure)
        if found.state is DaneState.UNUSABLE:
            self._count(destination, found.failure, "tlsa")
        return HostRequirement()

    def certificate_names(self, destination: Destination) -> tuple[str, ...]:
        """The names a verified certificate must carry one of: an enforced MTA-STS policy
        allows the MX host name only (RFC 8461 4.2); else the MX host or the domain."""
        if self.sts is not None and self.sts_enabled and self.sts.mode is Mode.ENFORCE:
            return (destination.mx_host,)
        return (destination.mx_host, self.domain)

    def check_dane(
        self, records: Sequence[TlsaRecord], chain: Sequence[bytes], destination: Destination
    ) -> str | None:
        """None if the server's chain satisfies the records, else why: "result-type: text"
        (what `classify_tls_failure` reads back)."""
        now = datetime.datetime.fromtimestamp(self.now(), datetime.UTC)
        check = verify_chain(records, chain, (destination.mx_host,), now)
        if check.ok:
            return None
        return f"{check.failure}: DANE: {check.detail}"

    def succeeded(self, destination: Destination, tls: bool, leaf: bytes | None) -> None:
        """A session is open: count it (testing mode: what enforce would have said)."""
        result = None
        if (
            self.sts is not None
            and self.sts.mode is Mode.TESTING
            and not self._is_dane(destination)
        ):
            now = datetime.datetime.fromtimestamp(self.now(), datetime.UTC)
            result = enforce_verdict(self.sts, destination.mx_host, tls, leaf, now)
        self._count(destination, result)

    def failed(self, destination: Destination, result: str) -> None:
        self._count(destination, result)

    def _is_dane(self, destination: Destination) -> bool:
        return destination.mx_host in self._dane_hosts

    def _count(
        self, destination: Destination, result: str | None, policy_type: str | None = None
    ) -> None:
        if self.counts is None:
            return
        if policy_type is None:
            policy_type = "no-policy-found"
            if self._is_dane(destination):
                policy_type = "tlsa"
            elif self.sts is not None:
                policy_type = "sts"
        session = Session(
            self.domain,
            policy_type,
            policy_lines(self.sts) if policy_type == "sts" and self.sts else (),
            self.sts.mx if policy_type == "sts" and self.sts else (),
            result,
            destination.mx_host,
            self.sending_ip,
            destination.ip,
        )
        self.counts.record(session, self.now())


class OutboundTls:
    """The daemon's MTA-STS policies, TLS counts and resolver, shared by every attempt."""

    def __init__(
        self,
        resolver: DnsResolver,
        sts: StsPolicies,
        counts: TlsCounts,
        now: Callable[[], float],
    ) -> None:
        self.resolver = resolver
        self.sts = sts
        self.counts = counts
        self.now = now
        sts.on_failure = self._fetch_failed

    def _fetch_failed(self, domain: str, result: str) -> None:
        self.counts.record(Session(domain, "sts", result=result), self.now())

    async def attempt(
        self, settings: DeliverySettings, domain: str
    ) -> tuple[DeliverySettings, Policy | None, DeliveryTlsPolicy | None]:
        """(the settings to deliver with, the enforced MTA-STS policy or None, the
        attempt's policy or None when neither MTA-STS nor DANE is used for the domain).
        A gateway is the operator's own next hop: neither applies."""
        if settings.gateway is not None or not (settings.use_mta_sts or settings.use_dane):
            return settings, None, None
        sts: Policy | None = None
        if settings.use_mta_sts:
            sts = (await self.sts.lookup(domain, settings.tls_ca)).policy
        applied = sts if settings.enable_mta_sts else None
        policy = DeliveryTlsPolicy(
            domain,
            self.resolver,
            self.now,
            sts=sts,
            sts_enabled=settings.enable_mta_sts,
            dane=settings.use_dane and settings.enable_dane,
            counts=self.counts,
            sending_ip=settings.bind_address or "",
        )
        return sts_settings(settings, applied), applied, policy

    def no_matching_mx(self, domain: str, policy: Policy, route: Route) -> None:
        """Count the attempt enforce refused: no MX host matches the policy."""
        session = Session(
            domain,
            "sts",
            policy_lines(policy),
            policy.mx,
            "validation-failure",
            ",".join(h.name for h in route.hosts),
        )
        self.counts.record(session, self.now())
