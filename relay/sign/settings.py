"""What the configuration says about signing, as plain frozen data (built by
relay.wiring.dkim from the `opendkim` stanzas; tests build it directly)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from relay.sign.keys import SigningKey

AUTH_USER = "auth_user"  # sign_condition: only mail from sessions that authenticated
CAN_RELAY = "can_relay"  # sign_condition: mail from clients allowed to relay (all relay takes)


@dataclass(frozen=True, slots=True, eq=False)
class SigningSpec:
    """One signature: key, selector, domain and how to canonicalize.

    domain: the d= tag; None signs for the From: domain itself.
    headers: the headerlist (lower case, never one of headers.NEVER_SIGNED), in order.
    oversign: names signed once more than they occur.
    lifetime: seconds until x= (0: no expiry tag).
    """

    profile: str
    domain: str | None
    selector: str
    key: SigningKey
    header_canon: str = "simple"
    body_canon: str = "simple"
    headers: tuple[str, ...] = ("from",)
    oversign: tuple[str, ...] = ()
    lifetime: float = 0.0
    condition: str | None = None

    @property
    def algorithm(self) -> str:
        return self.key.algorithm


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """One `opendkim` stanza: one signature per message it has a key for.

    domains: From: domain -> its signature (dkim_domain stanzas, %{d} key files found).
    fallback: the signature for any other From: domain (a key without %{d}), or None.
    """

    name: str
    domains: Mapping[str, SigningSpec] = field(default_factory=lambda: MappingProxyType({}))
    fallback: SigningSpec | None = None

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickled with its domains as a plain dict (a mapping proxy does not pickle)."""
        return _profile, (type(self), self.name, dict(self.domains), self.fallback)

    def spec_for(self, from_domain: str) -> SigningSpec | None:
        spec = self.domains.get(from_domain)
        return spec if spec is not None else self.fallback


def _profile(
    kind: type[Profile],
    name: str,
    domains: dict[str, SigningSpec],
    fallback: SigningSpec | None,
) -> Profile:
    return kind(name, MappingProxyType(domains), fallback)


def _always(group: str, binding: str | None, domain: str) -> bool:
    return True


@dataclass(frozen=True, slots=True, eq=False)
class DkimSettings:
    """profiles: in configuration order (the first one's signature on top).
    wants(group, binding, recipient_domain): what `opendkim_sign` and `dkim` say."""

    profiles: tuple[Profile, ...]
    wants: Callable[[str, str | None, str], bool] = _always

    def keys(self) -> list[tuple[str, str, SigningSpec]]:
        """(profile, From: domain or "*", spec) for every key, for `config check`."""
        found: list[tuple[str, str, SigningSpec]] = []
        for profile in self.profiles:
            for domain, spec in profile.domains.items():
                found.append((profile.name, domain, spec))
            if profile.fallback is not None:
                found.append((profile.name, "*", profile.fallback))
        return found
