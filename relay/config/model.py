"""Turn a syntax tree into a validated configuration: scopes, bindings, groups, listeners.

Every problem found is collected (with file, line, column and option) before ConfigError is
raised, so an operator fixes a file in one pass.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from relay.config import options as o
from relay.config import values as v
from relay.config.errors import ConfigError, Location, Problem, ValueProblem, sorted_problems
from relay.config.tree import Assignment, Document, ListValue, Scalar, Stanza

DEFAULT = "default"
NAME = re.compile(r"[^\s:]+")
ScopePath = tuple[str, ...]  # ("binding_group", "g1", "domain", "example.com"); () is global


@dataclass(slots=True)
class Setting:
    value: Any
    location: Location


@dataclass(slots=True)
class Block:
    """One scope instance; repeated stanzas of the same scope merge into one Block."""

    kind: str
    label: str | None
    path: ScopePath
    settings: dict[str, Setting] = field(default_factory=dict)
    domains: DomainTable | None = None
    hosts: dict[str, Block] = field(default_factory=dict)
    sweep_rules: dict[str, Block] = field(default_factory=dict)
    reply_rules: dict[str, Block] = field(default_factory=dict)
    webhooks: dict[str, Block] = field(default_factory=dict)  # global only
    dkim_domains: dict[str, Block] = field(default_factory=dict)
    providers: dict[str, Block] = field(default_factory=dict)  # global only
    tenants: dict[str, Block] = field(default_factory=dict)  # global only
    locations: list[Location] = field(default_factory=list)

    def describe(self) -> str:
        return describe_path(self.path)


def describe_path(path: ScopePath) -> str:
    if not path:
        return "global"
    parts = [f'{path[i]} "{path[i + 1]}"' for i in range(0, len(path), 2)]
    return " :: ".join(parts)


@dataclass(slots=True)
class DomainTable:
    """Domain stanzas of one scope: exact names (case-insensitive) win over /regex/ ones."""

    exact: dict[str, Block] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], Block]] = field(default_factory=list)

    def match(self, domain: str) -> Block | None:
        name = domain.lower().rstrip(".")
        block = self.exact.get(name)
        if block is not None:
            return block
        for pattern, candidate in self.patterns:
            if pattern.search(name):
                return candidate
        return None

    def blocks(self) -> list[Block]:
        return [*self.exact.values(), *(b for _, b in self.patterns)]


@dataclass(slots=True)
class Binding:
    name: str
    group: str
    blocks: list[Block]  # [declared inside its group, declared at top level]; most specific first
    group_declared: Location | None = None


@dataclass(slots=True)
class Listen:
    address: v.HostPort
    block: Block
    peers: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Block]]


@dataclass(slots=True)
class Config:
    global_block: Block
    groups: dict[str, Block]
    bindings: dict[str, Binding]
    listener: Block | None
    listens: list[Listen]
    listener_peers: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Block]]
    warnings: list[Problem]
    files: list[str] = field(default_factory=list)
    opendkim: dict[str, Block] = field(default_factory=dict)  # in declaration order
    cluster: Block | None = None  # the cluster { } stanza, if any

    def group_members(self, group: str) -> list[Binding]:
        return [b for b in self.bindings.values() if b.group == group]

    def domain_names(self) -> set[str]:
        names: set[str] = set()
        for block in self.all_blocks():
            if block.domains is not None:
                names.update(block.domains.exact)
                names.update(p.pattern for p, _ in block.domains.patterns)
        return names

    def all_blocks(self) -> list[Block]:
        blocks = [self.global_block, *self.groups.values()]
        for binding in self.bindings.values():
            blocks.extend(binding.blocks)
        return blocks


class _Builder:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.global_block = Block(o.GLOBAL, None, (), domains=DomainTable())
        self.groups: dict[str, Block] = {}
        self.binding_blocks: dict[tuple[str | None, str], Block] = {}
        self.binding_groups: dict[str, tuple[str, Location]] = {}
        self.listener: Block | None = None
        self.cluster: Block | None = None
        self.cluster_seen: dict[str, Location] = {}  # cluster_* limits set, first place each
        self.listens: dict[v.HostPort, Listen] = {}
        self.listener_peers: dict[str, tuple[Any, Block]] = {}
        self.inactive_seen: dict[str, Location] = {}
        self.opendkim: dict[str, Block] = {}

    def error(
        self, location: Location, message: str, option: str | None = None, hint: str | None = None
    ) -> None:
        self.problems.append(Problem(location, message, option, hint))

    # --- scopes -----------------------------------------------------------------------
    def group(self, name: str, location: Location) -> Block:
        block = self.groups.get(name)
        if block is None:
            block = Block(o.BINDING_GROUP, name, (o.BINDING_GROUP, name), domains=DomainTable())
            self.groups[name] = block
        block.locations.append(location)
        return block

    def binding(self, name: str, group: str | None, location: Location) -> Block:
        if group is not None:
            known = self.binding_groups.get(name)
            if known is not None and known[0] != group:
                self.error(
                    location,
                    f'binding "{name}" is already in binding_group "{known[0]}" '
                    f"(declared at {known[1]})",
                    hint="a binding belongs to one group; rename one of them",
                )
            else:
                self.binding_groups.setdefault(name, (group, location))
        key = (group, name)
        block = self.binding_blocks.get(key)
        if block is None:
            path: ScopePath = (o.BINDING, name)
            if group is not None:
                path = (o.BINDING_GROUP, group, o.BINDING, name)
            block = Block(o.BINDING, name, path, domains=DomainTable())
            self.binding_blocks[key] = block
        block.locations.append(location)
        return block

    def child(self, parent: Block, stanza: Stanza, label: str) -> Block | None:
        kind = stanza.kind.lower()
        loc = stanza.location
        if kind == o.DOMAIN:
            assert parent.domains is not None
            if len(label) > 1 and label.startswith("/") and label.endswith("/"):
                try:
                    pattern = re.compile(label[1:-1], re.IGNORECASE)
                except re.error as err:
                    self.error(loc, f"bad domain regex {label!r}: {err}", o.DOMAIN)
                    return None
                for existing, block in parent.domains.patterns:
                    if existing.pattern == pattern.pattern:
                        block.locations.append(loc)
                        return block
                block = Block(o.DOMAIN, label, (*parent.path, o.DOMAIN, label))
                parent.domains.patterns.append((pattern, block))
            else:
                name = label.lower().rstrip(".")
                block = parent.domains.exact.get(name) or Block(
                    o.DOMAIN, name, (*parent.path, o.DOMAIN, name)
                )
                parent.domains.exact[name] = block
        elif kind == o.HOST:
            name = label.lower()
            block = parent.hosts.get(name) or Block(o.HOST, name, (*parent.path, o.HOST, name))
            parent.hosts[name] = block
        elif kind == o.WEBHOOK:
            block = parent.webhooks.get(label) or Block(kind, label, (kind, label))
            parent.webhooks[label] = block
        elif kind == o.PROVIDER:
            block = parent.providers.get(label) or Block(kind, label, (kind, label))
            parent.providers[label] = block
        elif kind == o.TENANT:
            block = parent.tenants.get(label) or Block(kind, label, (kind, label))
            parent.tenants[label] = block
        elif kind in (o.SWEEP_RULE, o.REPLY_RULE):
            rules = parent.sweep_rules if kind == o.SWEEP_RULE else parent.reply_rules
            block = rules.get(label) or Block(kind, label, (*parent.path, kind, label))
            rules[label] = block
        else:
            raise AssertionError(kind)
        block.locations.append(loc)
        return block

    # --- walking the tree --------------------------------------------------------------
    def walk(self, body: tuple[Assignment | Stanza, ...], block: Block) -> None:
        seen: dict[str, Location] = {}
        for node in body:
            if isinstance(node, Assignment):
                self.assign(node, block, seen)
            else:
                self.stanza(node, block)

    def assign(self, node: Assignment, block: Block, seen: dict[str, Location]) -> None:
        name = node.name.lower()
        loc = node.location
        option = o.OPTIONS.get(name)
        if option is None:
            if name in o.STANZAS:
                self.error(
                    loc,
                    f"{node.name!r} is a stanza, not an option",
                    node.name,
                    hint=f'write {name} "name" {{ ... }}',
                )
                return
            close = difflib.get_close_matches(name, [*o.OPTIONS, *o.STANZAS], n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see shared/reference for options"
            self.error(loc, "unknown option", node.name, hint=hint)
            return
        if block.kind not in option.scopes:
            if name == o.BINDING_GROUP and block.kind == o.BINDING:
                self.error(
                    loc,
                    "binding_group inside a binding is the removed pre-3.0 form",
                    node.name,
                    hint=f'write binding_group "{scalar_label(node.value)}" {{ binding '
                    f'"{block.label}" {{ ... }} }} instead',
                )
                return
            allowed = ", ".join(sorted(option.scopes))
            self.error(
                loc, f"not valid in the {block.kind} scope", node.name, hint=f"valid in: {allowed}"
            )
            return
        if name in seen:
            self.error(
                loc,
                f"set twice in the same stanza (first at line {seen[name].line})",
                node.name,
                hint="remove one of them",
            )
            return
        seen[name] = loc
        try:
            value = option.type(node.value)
        except ValueProblem as err:
            self.error(loc, f"bad value {v.scalar_text(node.value)!r}: {err}", node.name)
            return
        previous = block.settings.get(name)
        if previous is not None:
            self.warnings.append(
                Problem(
                    loc,
                    f"overrides the value set at {previous.location} in {block.describe()}",
                    node.name,
                )
            )
        block.settings[name] = Setting(value, loc)
        if option.status != "active":
            self.inactive_seen.setdefault(name, loc)
        if name.startswith("cluster_"):
            self.cluster_seen.setdefault(name, loc)

    def stanza(self, node: Stanza, parent: Block) -> None:
        kind = node.kind.lower()
        loc = node.location
        spec = o.STANZAS.get(kind)
        if spec is None:
            if kind in o.OPTIONS:
                self.error(
                    loc,
                    f"{node.kind!r} is an option, not a stanza",
                    node.kind,
                    hint=f"write {kind} = value",
                )
                return
            close = difflib.get_close_matches(kind, [*o.STANZAS, *o.OPTIONS], n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove it"
            self.error(loc, "unknown stanza", node.kind, hint=hint)
            return
        if parent.kind not in spec.parents:
            message, hint = misplaced(kind, node.label.text if node.label else None, parent)
            self.error(loc, message, node.kind, hint=hint)
            return
        label = node.label.text if node.label is not None else None
        if spec.labelled and not label:
            self.error(
                loc,
                f"a {kind} stanza needs a name",
                node.kind,
                hint=f'write {kind} "name" {{ ... }}',
            )
            return
        if not spec.labelled and label is not None:
            self.error(
                loc, f"a {kind} stanza takes no name", node.kind, hint=f"write {kind} {{ ... }}"
            )
            return
        block = self.open_stanza(kind, label, parent, loc)
        if block is not None:
            self.walk(node.body, block)
            if kind == o.WEBHOOK and "url" not in block.settings:
                self.error(
                    loc, f'webhook "{label}" needs url', kind, hint='e.g. url = "https://..."'
                )
            if kind == o.PROVIDER and not (block.settings.keys() & {"match_mx", "match_domain"}):
                self.error(
                    loc,
                    f'provider "{label}" needs match_mx or match_domain',
                    kind,
                    hint='e.g. match_mx = ( "*.google.com" "*.googlemail.com" )',
                )
            if kind == o.REPLY_RULE:
                for required in ("pattern", "threshold", "action"):
                    if required not in block.settings:
                        self.error(
                            loc,
                            f'adaptive_reply_rule "{label}" needs {required}',
                            kind,
                            hint='e.g. pattern = "too many connections" threshold = "3/60" '
                            'action = ( "throttle" "down" )',
                        )

    def open_stanza(
        self, kind: str, label: str | None, parent: Block, loc: Location
    ) -> Block | None:
        if kind in (o.BINDING_GROUP, o.BINDING):
            assert label is not None
            if not NAME.fullmatch(label):
                self.error(loc, f"{kind} name {label!r} may not contain spaces or colons", kind)
                return None
            if kind == o.BINDING_GROUP:
                return self.group(label, loc)
            group = parent.label if parent.kind == o.BINDING_GROUP else None
            return self.binding(label, group, loc)
        if kind in (o.DOMAIN, o.HOST, o.SWEEP_RULE, o.REPLY_RULE, o.WEBHOOK, o.PROVIDER, o.TENANT):
            assert label is not None
            return self.child(parent, Stanza(kind, None, (), loc), label)
        if kind in (o.OPENDKIM, o.DKIM_DOMAIN):
            assert label is not None
            table = self.opendkim if kind == o.OPENDKIM else parent.dkim_domains
            name = label if kind == o.OPENDKIM else label.lower().rstrip(".")
            block = table.get(name) or Block(kind, name, (*parent.path, kind, name))
            table[name] = block
            block.locations.append(loc)
            return block
        if kind == o.DANE_MODULE:  # Momentum loads the module so; relay needs only use_dane
            return Block(o.DANE_MODULE, None, (o.DANE_MODULE,))
        if kind == o.ESMTP_LISTENER:
            if self.listener is None:
                self.listener = Block(o.ESMTP_LISTENER, None, (o.ESMTP_LISTENER,))
            self.listener.locations.append(loc)
            return self.listener
        if kind == o.CLUSTER:
            if self.cluster is None:
                self.cluster = Block(o.CLUSTER, None, (o.CLUSTER,))
            self.cluster.locations.append(loc)
            return self.cluster
        if kind == o.LISTEN:
            assert label is not None
            try:
                address = v.parse_host_port(label)
            except ValueProblem as err:
                self.error(
                    loc,
                    f"bad listen address: {err}",
                    kind,
                    hint='e.g. "127.0.0.1:2525", "[::1]:2525", ":25"',
                )
                return None
            if address.port is None:
                self.error(
                    loc, f"listen address {label!r} has no port", kind, hint='e.g. "127.0.0.1:2525"'
                )
                return None
            listen = self.listens.get(address)
            if listen is None:
                block = Block(o.LISTEN, label, (o.ESMTP_LISTENER, "", o.LISTEN, label))
                listen = Listen(address, block, [])
                self.listens[address] = listen
            listen.block.locations.append(loc)
            return listen.block
        if kind == o.PEER:
            assert label is not None
            try:
                network = v.parse_network(label)
            except ValueProblem as err:
                self.error(loc, f"bad peer: {err}", kind, hint='e.g. "10.0.0.0/8"')
                return None
            block = Block(o.PEER, label, (*parent.path, o.PEER, label))
            if parent.kind == o.LISTEN:
                owner = next(lst for lst in self.listens.values() if lst.block is parent)
                owner.peers.append((network, block))
            else:
                self.listener_peers[label] = (network, block)
            block.locations.append(loc)
            return block
        raise AssertionError(kind)

    def finish(self, files: list[str]) -> Config:
        origin = Location("<built-in>", 0, 0)
        self.group(DEFAULT, origin)
        if not any(name == DEFAULT for _, name in self.binding_blocks):
            self.binding(DEFAULT, None, origin)
        bindings: dict[str, Binding] = {}
        for (group, name), block in self.binding_blocks.items():
            entry = bindings.get(name)
            if entry is None:
                member_of = self.binding_groups.get(name)
                entry = Binding(
                    name,
                    member_of[0] if member_of else DEFAULT,
                    [],
                    member_of[1] if member_of else None,
                )
                bindings[name] = entry
            if group is None:
                entry.blocks.append(block)
            else:
                entry.blocks.insert(0, block)
        for name, loc in self.inactive_seen.items():
            option = o.OPTIONS[name]
            reason = o.not_supported(name)
            if reason is not None:
                text = f"accepted for compatibility but ignored: not supported ({reason})"
            elif option.status == "ignored":
                text = "accepted for compatibility but ignored by relay"
            else:
                text = "parsed and validated, but relay does not act on it yet"
            self.warnings.append(Problem(loc, text, name))
        if self.cluster is None:
            for name, loc in self.cluster_seen.items():
                text = "acts only with a cluster stanza (a single node ignores it)"
                self.warnings.append(Problem(loc, text, name))
        return Config(
            self.global_block,
            self.groups,
            bindings,
            self.listener,
            list(self.listens.values()),
            list(self.listener_peers.values()),
            self.warnings,
            files,
            self.opendkim,
            self.cluster,
        )


def named(kind: str, label: str | None) -> str:
    return kind if label is None else f'{kind} "{label}"'


PLURALS = {o.BINDING: "bindings", o.BINDING_GROUP: "binding groups", o.DOMAIN: "domains"}
PLURALS |= {o.HOST: "hosts", o.PEER: "peers"}


def container(block: Block) -> str:
    """Where `block` itself is declared: "at the top level", "inside binding "b"", ..."""
    outer = block.path[:-2]
    if not outer:
        return "at the top level"
    if outer[0] == o.ESMTP_LISTENER:
        return "inside " + (named(o.LISTEN, outer[3]) if len(outer) == 4 else o.ESMTP_LISTENER)
    return f"inside {describe_path(outer)}"


def misplaced(kind: str, label: str | None, parent: Block) -> tuple[str, str]:
    """Message and hint for a stanza inside a scope it may not appear in."""
    spec = o.STANZAS[kind]
    what = named(kind, label)
    parent_name = named(parent.kind, parent.label)
    where = "at the top level" if parent.kind == o.GLOBAL else f"inside {parent_name}"
    if kind == parent.kind == o.ESMTP_LISTENER:
        reason = "there is one esmtp_listener and it does not nest"
        hint = "remove the inner esmtp_listener { } and keep what it holds"
    elif kind == parent.kind:
        reason = f"{PLURALS.get(kind, kind + ' stanzas')} do not nest"
        hint = f'declare it {container(parent)}, beside "{parent.label}"'
    elif kind == o.BINDING_GROUP and parent.kind == o.BINDING:
        reason = "a binding_group holds bindings, not the other way round"
        if len(parent.path) > 2:
            group = named(o.BINDING_GROUP, parent.path[1])
            hint = f"{parent_name} is already in {group}, and a binding belongs to one group"
        else:
            hint = f"write {what} {{ {parent_name} {{ ... }} }} at the top level"
    elif kind == o.HOST and parent.kind == o.DOMAIN:
        reason = "there is no domain::host scope: host options apply whatever the domain"
        hint = f'declare it {container(parent)}, beside "{parent.label}"'
    elif kind == o.DOMAIN and parent.kind == o.HOST:
        reason = "a host stanza holds options only, and domain is the wider scope"
        hint = f'declare it {container(parent)}, beside "{parent.label}"'
    elif kind in (o.LISTEN, o.PEER) and parent.kind not in spec.parents:
        reason = f"{PLURALS.get(kind, kind + ' stanzas')} belong to the esmtp_listener"
        hint = f"write esmtp_listener {{ {what} {{ ... }} }} at the top level"
    elif kind == o.ESMTP_LISTENER:
        reason = "the esmtp_listener is a top-level stanza"
        hint = "move it to the top level"
    else:
        article = "an" if kind[0] in "aeiou" else "a"
        reason = f"{article} {kind} stanza cannot appear in the {parent.kind} scope"
        hint = f"it is valid in: {', '.join(sorted(spec.parents))}"
    return f"{what} {where}: {reason}", hint


def scalar_label(value: Scalar | ListValue) -> str:
    return value.text if isinstance(value, Scalar) else v.scalar_text(value)


def build(
    document: Document, files: list[str] | None = None, syntax: list[Problem] | None = None
) -> Config:
    """Validate a parsed document; raise ConfigError listing every problem, including the
    syntax problems found while parsing it (`syntax`)."""
    builder = _Builder()
    builder.walk(document.body, builder.global_block)
    cluster = builder.cluster
    if cluster is not None and "redis_url" not in cluster.settings:
        builder.error(
            cluster.locations[0],
            "the cluster stanza needs redis_url",
            o.CLUSTER,
            hint='e.g. redis_url = "redis://127.0.0.1:6379/0"',
        )
    problems = [*(syntax or []), *builder.problems]
    if problems:
        raise ConfigError(sorted_problems(problems))
    return builder.finish(files or [])
