"""DKIM signing settings from the `opendkim` stanzas (`relay.sign.settings.DkimSettings`).

Every key is loaded here, at start and at each reload: a missing, unreadable or malformed
key file is a ConfigError naming the file, the line and the option, never an unsigned
message later. A key path with %{d} is looked up on disk for every domain (the files
present now are the domains signed; a new domain's key takes a reload); %{s} is the
selector. `opendkim_sign` and `dkim` are resolved along the usual fallback chain for the
message's binding group, binding and each recipient domain.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from relay.config.errors import ConfigError, Location, Problem, sorted_problems
from relay.config.model import Block, Config, Setting
from relay.config.options import OPTIONS
from relay.config.resolve import scoped
from relay.sign.headers import DEFAULT_HEADERS, NEVER_SIGNED
from relay.sign.keys import KeyFileError, SigningKey, load_key
from relay.sign.settings import DkimSettings, Profile, SigningSpec

_NAMES = re.compile(r"[\s,:;]+")
_CACHE_LIMIT = 10_000
DOMAIN_PART = "%{d}"
SELECTOR_PART = "%{s}"


def dkim_settings(config: Config) -> DkimSettings | None:
    """The signing profiles, one per `opendkim` stanza; None when there is none.
    Raises ConfigError listing every key that does not load."""
    if not config.opendkim:
        return None
    problems: list[Problem] = []
    profiles = [_profile(name, block, problems) for name, block in config.opendkim.items()]
    if problems:
        raise ConfigError(sorted_problems(problems))
    return DkimSettings(tuple(profiles), _wants(config))


def _setting(blocks: tuple[Block, ...], option: str) -> Setting | None:
    for block in blocks:
        found = block.settings.get(option)
        if found is not None:
            return found
    return None


def _value(blocks: tuple[Block, ...], option: str) -> Any:
    found = _setting(blocks, option)
    return OPTIONS[option].default_value() if found is None else found.value


def _names(value: Any) -> list[str]:
    """A header list as Momentum writes it: a list, or names split by commas or spaces."""
    items = [value] if isinstance(value, str) else list(value or ())
    return [name.lower() for item in items for name in _NAMES.split(str(item)) if name]


def _where(block: Block) -> Location:
    return block.locations[0] if block.locations else Location("<built-in>", 0, 0)


class _Spec:
    """What one scope (opendkim, or dkim_domain within it) says, before keys load."""

    def __init__(self, blocks: tuple[Block, ...], common: dict[str, Any]) -> None:
        self.blocks = blocks
        self.common = common

    def make(self, profile: str, domain: str | None, selector: str, key: SigningKey) -> SigningSpec:
        return SigningSpec(
            profile=profile,
            domain=domain,
            selector=selector,
            key=key,
            header_canon=str(_value(self.blocks, "header_canon")),
            body_canon=str(_value(self.blocks, "body_canon")),
            headers=self.common["headers"],
            oversign=self.common["oversign"],
            lifetime=self.common["lifetime"],
            condition=_value(self.blocks, "sign_condition"),
        )


_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field names
_DNS_LABELS = re.compile(
    r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*"
)


def _check_names(blocks: tuple[Block, ...], problems: list[Problem]) -> None:
    """Values that go into the signature as they are: field names, selector, domain."""
    for block in blocks:
        for option in ("headerlist", "oversign_headerlist", "skip_headerlist"):
            setting = block.settings.get(option)
            bad = (
                [n for n in _names(setting.value) if not _FIELD_NAME.fullmatch(n)]
                if setting
                else []
            )
            if setting is not None and bad:
                problems.append(
                    Problem(setting.location, f"not a header field name: {bad[0]!r}", option)
                )
        for option in ("selector", "base_domain"):
            setting = block.settings.get(option)
            if setting is not None and not _DNS_LABELS.fullmatch(str(setting.value)):
                problems.append(
                    Problem(
                        setting.location,
                        f"{setting.value!r} is not a DNS name (ASCII labels: letters, digits, "
                        "- and _; an internationalized domain as its xn-- form)",
                        option,
                    )
                )


def _common(name: str, block: Block, problems: list[Problem]) -> dict[str, Any]:
    """The stanza-wide parts: header lists and lifetime."""
    _check_names((block, *block.dkim_domains.values()), problems)
    headerlist = block.settings.get("headerlist")
    skip_setting = block.settings.get("skip_headerlist")
    skip = set(_names(skip_setting.value)) if skip_setting is not None else set()
    headers = _names(headerlist.value) if headerlist is not None else list(DEFAULT_HEADERS)
    if headerlist is not None and "from" not in headers:
        problems.append(
            Problem(
                headerlist.location,
                f'opendkim "{name}": the headerlist must include From (RFC 6376 5.4)',
                "headerlist",
                hint='e.g. headerlist = ( "from" "to" "subject" "date" "message-id" )',
            )
        )
    if skip_setting is not None and "from" in skip:
        problems.append(
            Problem(
                skip_setting.location,
                f'opendkim "{name}": From is always signed and cannot be skipped',
                "skip_headerlist",
                hint="take from out of skip_headerlist",
            )
        )
    oversign_setting = block.settings.get("oversign_headerlist")
    oversign = _names(oversign_setting.value) if oversign_setting is not None else []
    return {
        "headers": tuple(
            dict.fromkeys(h for h in headers if h not in skip and h not in NEVER_SIGNED)
        ),
        "oversign": tuple(
            dict.fromkeys(h for h in oversign if h not in skip and h not in NEVER_SIGNED)
        ),
        "lifetime": float(_value((block,), "lifetime")) * 3600.0,
    }


def _load(
    path: str, digest: str, key_setting: Setting, problems: list[Problem]
) -> SigningKey | None:
    try:
        return load_key(path, digest)
    except KeyFileError as err:
        problems.append(
            Problem(
                key_setting.location,
                str(err),
                "key",
                hint="fix the file or the key option; `relay config check` verifies every key",
            )
        )
        return None


def _expand(pattern: str, domain: str, selector: str) -> str:
    return pattern.replace(DOMAIN_PART, domain).replace(SELECTOR_PART, selector)


def _profile(name: str, block: Block, problems: list[Problem]) -> Profile:
    common = _common(name, block, problems)
    domains: dict[str, SigningSpec] = {}
    for label, sub in block.dkim_domains.items():
        blocks = (sub, block)
        selector = _value(blocks, "selector")
        key_setting = _setting(blocks, "key")
        if selector is None or key_setting is None:
            missing = "selector" if selector is None else "key"
            problems.append(
                Problem(
                    _where(sub),
                    f'opendkim "{name}" :: dkim_domain "{label}" has no {missing}',
                    missing,
                    hint=f"set {missing} in the dkim_domain or in its opendkim stanza",
                )
            )
            continue
        signing_domain = str(_value(blocks, "base_domain") or label).lower().rstrip(".")
        digest = str(_value(blocks, "digest"))
        path = _expand(str(key_setting.value), signing_domain, str(selector))
        key = _load(path, digest, key_setting, problems)
        if key is not None:
            domains[label] = _Spec(blocks, common).make(name, signing_domain, str(selector), key)
    fallback = None
    key_setting = block.settings.get("key")
    selector = block.settings.get("selector")
    if key_setting is not None and selector is None and not block.dkim_domains:
        problems.append(
            Problem(
                key_setting.location,
                f'opendkim "{name}" has a key but no selector',
                "selector",
                hint='set selector = "..."; the key is published at SELECTOR._domainkey.DOMAIN',
            )
        )
    elif key_setting is not None and selector is not None:
        top = _Spec((block,), common)
        digest = str(_value((block,), "digest"))
        pattern = _expand(str(key_setting.value), DOMAIN_PART, str(selector.value))
        if DOMAIN_PART not in pattern:
            key = _load(pattern, digest, key_setting, problems)
            if key is not None:
                fallback = top.make(name, None, str(selector.value), key)
        else:
            for domain, path in _domain_files(pattern):
                if domain in domains:
                    continue
                key = _load(path, digest, key_setting, problems)
                if key is not None:
                    domains[domain] = top.make(name, domain, str(selector.value), key)
    if block.settings.get("key") is None and not block.dkim_domains:
        problems.append(
            Problem(
                _where(block),
                f'opendkim "{name}" has no key',
                "key",
                hint='set key = "/path/%{d}/%{s}.pem" and selector, or add dkim_domain stanzas',
            )
        )
    return Profile(name, MappingProxyType(domains), fallback)


def domain_files(pattern: str, selector: str) -> list[tuple[str, str]]:
    """(domain, path) for each file a key pattern with %{d} names (for `config check`)."""
    return _domain_files(pattern.replace(SELECTOR_PART, selector))


def _domain_files(pattern: str) -> list[tuple[str, str]]:
    """The files on disk that `pattern` (with %{d}) names, and the domain of each."""
    pieces = pattern.split(DOMAIN_PART)
    wildcard = "*".join(glob.escape(piece) for piece in pieces)
    regex = "(?P<d>[^/]+)".join(re.escape(piece) for piece in pieces[:2])
    if len(pieces) > 2:
        regex += "".join("(?P=d)" + re.escape(piece) for piece in pieces[2:])
    matcher = re.compile(regex)
    found: list[tuple[str, str]] = []
    for path in sorted(glob.glob(wildcard)):
        match = matcher.fullmatch(path)
        if match is not None:
            found.append((match.group("d").lower().rstrip("."), path))
    return found


def _wants(config: Config) -> Callable[[str, str | None, str], bool]:
    """opendkim_sign (default true) and not dkim = disabled, for (group, binding, recipient
    domain); the recipient domain matters only when a domain stanza sets either option."""
    domain_sensitive = any(
        "opendkim_sign" in block.settings or "dkim" in block.settings
        for scope in config.all_blocks()
        if scope.domains is not None
        for block in scope.domains.blocks()
    )
    cache: dict[tuple[str, str | None, str | None], bool] = {}

    def wants(group: str, binding: str | None, domain: str) -> bool:
        key = (group, binding, domain if domain_sensitive else None)
        answer = cache.get(key)
        if answer is None:
            get = scoped(config, group, binding, key[2])
            answer = bool(get("opendkim_sign").value) and get("dkim").value != "disabled"
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = answer
        return answer

    return wants
