"""Effective option values, following Momentum's fallback (most specific first):

    G::B::D, B::D, G::D, B, G, global::D, global, built-in default

`G::B` is a binding declared inside its group, `B` one declared at top level (both are the
same binding). Host-scope options (max_outbound_connections and friends) have no fallback in
the host scope: an undeclared value there means "no per-host limit" (-1 / unset).

Each answer carries the scope it came from, so throttles can be shared by reference: one
bucket per defining scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.config import options as o
from relay.config.errors import Location
from relay.config.model import DEFAULT, Block, Config, ScopePath, describe_path

HOST_NO_FALLBACK = {"max_outbound_connections": -1}


class UnknownScope(LookupError):
    """A binding, group or option named in a lookup does not exist."""


@dataclass(frozen=True, slots=True)
class Resolved:
    name: str
    value: Any
    scope: ScopePath | None  # None: the built-in default
    location: Location | None

    def origin(self) -> str:
        if self.scope is None:
            return "default"
        return f"from {describe_path(self.scope)}"


def chain(
    config: Config,
    group: str | None = None,
    binding: str | None = None,
    domain: str | None = None,
) -> list[Block]:
    """The scope blocks consulted for (group, binding, domain), most specific first."""
    binding_entry = None
    if binding is not None:
        binding_entry = config.bindings.get(binding)
        if binding_entry is None:
            raise UnknownScope(f'no binding "{binding}"')
        if group is not None and binding_entry.group != group:
            raise UnknownScope(
                f'binding "{binding}" is in binding_group "{binding_entry.group}", not "{group}"'
            )
        group = binding_entry.group
    group_block = None
    if group is not None:
        group_block = config.groups.get(group)
        if group_block is None:
            raise UnknownScope(f'no binding_group "{group}"')
    blocks: list[Block] = []

    def add_domain(block: Block | None) -> None:
        if block is not None and domain is not None and block.domains is not None:
            found = block.domains.match(domain)
            if found is not None:
                blocks.append(found)

    if binding_entry is not None:
        for block in binding_entry.blocks:  # G::B::D, B::D
            add_domain(block)
    add_domain(group_block)  # G::D
    if binding_entry is not None:
        blocks.extend(binding_entry.blocks)  # B
    if group_block is not None:
        blocks.append(group_block)  # G
    add_domain(config.global_block)  # global::D
    blocks.append(config.global_block)  # global
    return blocks


def host_chain(config: Config, group: str | None, binding: str | None, host: str) -> list[Block]:
    name = host.lower()
    found: list[Block] = []
    for block in chain(config, group, binding, None):
        if block.kind == o.DOMAIN:
            continue
        hit = block.hosts.get(name)
        if hit is not None:
            found.append(hit)
    return found


def resolve(
    config: Config,
    option: str,
    group: str | None = None,
    binding: str | None = None,
    domain: str | None = None,
    host: str | None = None,
) -> Resolved:
    name = option.lower()
    spec = o.OPTIONS.get(name)
    if spec is None:
        raise UnknownScope(f"no option {option!r}")
    if host is not None and o.HOST in spec.scopes:
        for block in host_chain(config, group, binding, host):
            setting = block.settings.get(name)
            if setting is not None:
                return Resolved(name, setting.value, block.path, setting.location)
        return Resolved(name, HOST_NO_FALLBACK.get(name), None, None)
    for block in chain(config, group, binding, domain):
        setting = block.settings.get(name)
        if setting is not None:
            return Resolved(name, setting.value, block.path, setting.location)
    return Resolved(name, spec.default_value(), None, None)


# What a `scoped` lookup found past a binding's own blocks, by (those blocks, option): the
# same for every binding of a group, so a group of 1,000 bindings walks them once per option.
SharedLookups = dict[tuple[tuple[int, ...], str], Resolved]


def scoped(
    config: Config,
    group: str | None = None,
    binding: str | None = None,
    domain: str | None = None,
    *,
    shared: SharedLookups | None = None,
) -> Callable[[str], Resolved]:
    """`resolve` for many options of one (group, binding, domain): the fallback chain is
    computed once (what the per binding x domain policy caches use).

    `shared` (kept by the caller for one configuration, which must not change meanwhile)
    remembers what was found in the blocks after the binding's own ones (its group, the
    global scope and their domain blocks), for every binding that falls back to them."""
    blocks = chain(config, group, binding, domain)

    def walk(name: str, spec: o.Option, through: list[Block]) -> Resolved:
        for block in through:
            setting = block.settings.get(name)
            if setting is not None:
                return Resolved(name, setting.value, block.path, setting.location)
        return Resolved(name, spec.default_value(), None, None)

    def get(option: str) -> Resolved:
        name = option.lower()
        spec = o.OPTIONS.get(name)
        if spec is None:
            raise UnknownScope(f"no option {option!r}")
        return walk(name, spec, blocks)

    own = config.bindings[binding].blocks if binding is not None else []
    split = max((i + 1 for i, b in enumerate(blocks) if any(b is x for x in own)), default=0)
    if shared is None or split == 0:
        return get
    head, tail = blocks[:split], blocks[split:]
    tail_key = tuple(id(block) for block in tail)

    def get_shared(option: str) -> Resolved:
        name = option.lower()
        for block in head:
            setting = block.settings.get(name)
            if setting is not None:
                return Resolved(name, setting.value, block.path, setting.location)
        key = (tail_key, name)
        found = shared.get(key)
        if found is None:
            spec = o.OPTIONS.get(name)
            if spec is None:
                raise UnknownScope(f"no option {option!r}")
            found = shared[key] = walk(name, spec, tail)
        return found

    return get_shared


def listener_chain(config: Config, listen_index: int | None, peer: str | None) -> list[Block]:
    """peer in listen, listen, peer in esmtp_listener, esmtp_listener, global."""
    import ipaddress

    blocks: list[Block] = []
    address = ipaddress.ip_address(peer) if peer is not None else None
    listen = config.listens[listen_index] if listen_index is not None else None
    if listen is not None:
        if address is not None:
            blocks.extend(b for net, b in listen.peers if address in net)
        blocks.append(listen.block)
    if address is not None:
        blocks.extend(b for net, b in config.listener_peers if address in net)
    if config.listener is not None:
        blocks.append(config.listener)
    blocks.append(config.global_block)
    return blocks


def resolve_listener(
    config: Config, option: str, listen_index: int | None = None, peer: str | None = None
) -> Resolved:
    name = option.lower()
    spec = o.OPTIONS[name]
    for block in listener_chain(config, listen_index, peer):
        setting = block.settings.get(name)
        if setting is not None:
            return Resolved(name, setting.value, block.path, setting.location)
    return Resolved(name, spec.default_value(), None, None)


__all__ = [
    "DEFAULT",
    "Resolved",
    "UnknownScope",
    "chain",
    "resolve",
    "resolve_listener",
    "scoped",
]
