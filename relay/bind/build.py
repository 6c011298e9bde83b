"""Build the selector's view of the binding groups from a configuration."""

from __future__ import annotations

from collections.abc import Callable

from relay.bind.plumbing import is_plumbed
from relay.bind.selector import Member, Selector
from relay.bind.suspensions import SuspensionTable
from relay.config import resolve
from relay.config.model import Config


def members_by_group(
    config: Config, plumbed: Callable[[str | None], bool] = is_plumbed
) -> tuple[dict[str, list[Member]], list[tuple[str, str]]]:
    """Each group's members, and the (binding, address) pairs that are not plumbed."""
    groups: dict[str, list[Member]] = {name: [] for name in config.groups}
    unplumbed: list[tuple[str, str]] = []
    for binding in config.bindings.values():
        address = resolve(config, "bind_address", binding=binding.name).value
        weight = int(resolve(config, "binding_weight", binding=binding.name).value)
        ok = plumbed(address)
        if not ok:
            unplumbed.append((binding.name, str(address)))
        groups.setdefault(binding.group, []).append(Member(binding.name, weight, ok))
    return groups, unplumbed


def selector_from_config(
    config: Config,
    suspensions: SuspensionTable | None = None,
    plumbed: Callable[[str | None], bool] = is_plumbed,
) -> tuple[Selector, list[tuple[str, str]]]:
    groups, unplumbed = members_by_group(config, plumbed)
    return Selector(groups, suspensions or SuspensionTable()), unplumbed
