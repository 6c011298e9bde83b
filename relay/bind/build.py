"""Build the selector's view of the binding groups from the bindings' compiled settings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from relay.bind.plumbing import is_plumbed
from relay.bind.selector import Member, Selector
from relay.bind.suspensions import SuspensionTable


@dataclass(frozen=True, slots=True)
class BindingSettings:
    """One binding as the selector and the admin view need it."""

    name: str
    group: str
    bind_address: str | None
    weight: int


def members_by_group(
    groups: Iterable[str],
    bindings: Iterable[BindingSettings],
    plumbed: Callable[[str | None], bool] = is_plumbed,
) -> tuple[dict[str, list[Member]], list[tuple[str, str]]]:
    """Each group's members, and the (binding, address) pairs that are not plumbed."""
    members: dict[str, list[Member]] = {name: [] for name in groups}
    unplumbed: list[tuple[str, str]] = []
    for binding in bindings:
        ok = plumbed(binding.bind_address)
        if not ok:
            unplumbed.append((binding.name, str(binding.bind_address)))
        members.setdefault(binding.group, []).append(Member(binding.name, binding.weight, ok))
    return members, unplumbed


def build_selector(
    groups: Iterable[str],
    bindings: Iterable[BindingSettings],
    suspensions: SuspensionTable | None = None,
    plumbed: Callable[[str | None], bool] = is_plumbed,
) -> tuple[Selector, list[tuple[str, str]]]:
    members, unplumbed = members_by_group(groups, bindings, plumbed)
    return Selector(members, suspensions or SuspensionTable()), unplumbed
