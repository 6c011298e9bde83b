"""Holds on a sender rather than an IP: (tenant x domain), (campaign x domain),
(tenant x binding x domain) and (tenant x provider). Pure data + a clock value.

An operator (the admin API) or adaptive delivery (a reply rule with `scope = tenant` or
`campaign`) puts them here; the queue core parks a held message's job aside, without an
attempt and without counting a failure, and puts it back when the hold ends or is lifted.
`target` is a domain, or a provider's key "provider:NAME" (schedule/providers.py), which
holds the subject's mail to every domain of that provider.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["tenant", "campaign"]
KINDS: tuple[Kind, ...] = ("tenant", "campaign")
HoldKey = tuple[str, str, str, str]  # (kind, subject, target, binding or "")


@dataclass(frozen=True, slots=True)
class Hold:
    kind: Kind
    subject: str  # the tenant or campaign name
    target: str  # a domain, or "provider:NAME"
    binding: str | None  # tenant x binding x domain; None: whichever binding
    until: float
    reason: str

    @property
    def key(self) -> HoldKey:
        return (self.kind, self.subject, self.target, self.binding or "")

    def describe(self) -> str:
        where = self.target if self.binding is None else f"{self.binding} x {self.target}"
        return f"{self.kind} {self.subject} x {where} held: {self.reason}"


class HoldTable:
    def __init__(self) -> None:
        self._holds: dict[HoldKey, Hold] = {}
        self._by_binding = 0  # how many holds name a binding (the room check asks then only)

    def __bool__(self) -> bool:
        return bool(self._holds)

    def hold(
        self,
        kind: Kind,
        subject: str,
        target: str,
        until: float,
        reason: str,
        binding: str | None = None,
    ) -> Hold:
        entry = Hold(kind, subject, target.lower(), binding, until, reason)
        if entry.key not in self._holds and binding is not None:
            self._by_binding += 1
        self._holds[entry.key] = entry
        return entry

    def release(self, kind: str, subject: str, target: str, binding: str | None = None) -> bool:
        found = self._holds.pop((kind, subject, target.lower(), binding or ""), None)
        if found is not None and found.binding is not None:
            self._by_binding -= 1
        return found is not None

    def get(self, key: HoldKey) -> Hold | None:
        return self._holds.get(key)

    def for_job(
        self,
        tenant: str | None,
        campaign: str | None,
        domain: str,
        provider_key: str | None,
        now: float,
    ) -> Hold | None:
        """The hold (whichever binding) in force on a message of tenant/campaign to domain."""
        holds = self._holds
        for kind, subject in (("tenant", tenant), ("campaign", campaign)):
            if subject is None:
                continue
            found = holds.get((kind, subject, domain, ""))
            if found is None and provider_key is not None:
                found = holds.get((kind, subject, provider_key, ""))
            if found is not None and found.until > now:
                return found
        return None

    def on_binding(self, tenant: str | None, binding: str, domain: str, now: float) -> Hold | None:
        """A tenant x binding x domain hold in force."""
        if tenant is None or not self._by_binding:
            return None
        found = self._holds.get(("tenant", tenant, domain, binding))
        return found if found is not None and found.until > now else None

    def earliest_end(self, now: float) -> float | None:
        ends = [h.until for h in self._holds.values() if h.until > now]
        return min(ends) if ends else None

    def ended(self, now: float) -> list[Hold]:
        """Holds whose time is up (still listed until released)."""
        return [h for h in self._holds.values() if h.until <= now]

    def all(self) -> list[Hold]:
        return list(self._holds.values())


# --- on disk (daemon: spoolbase/holds.json) ----------------------------------------------
def to_json(table: HoldTable) -> str:
    """The table as JSON: a list of holds with their end times (wall-clock seconds)."""
    return json.dumps(
        {
            "holds": [
                {
                    "kind": h.kind,
                    "subject": h.subject,
                    "target": h.target,
                    "binding": h.binding,
                    "until": h.until,
                    "reason": h.reason,
                }
                for h in table.all()
            ]
        }
    )


def from_json(text: str, now: float) -> HoldTable:
    """The table saved by to_json, without the holds ended by `now`. Raises ValueError
    (bad JSON, an unknown kind) or KeyError/TypeError (a missing or mistyped field)."""
    data = json.loads(text)
    table = HoldTable()
    for row in data["holds"]:
        kind = str(row["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown hold kind {kind!r} (expected tenant or campaign)")
        until = float(row["until"])
        if until <= now:
            continue
        binding = row.get("binding")
        table.hold(
            "tenant" if kind == "tenant" else "campaign",
            str(row["subject"]),
            str(row["target"]),
            until,
            str(row.get("reason", "")),
            None if binding is None else str(binding),
        )
    return table


def load(path: Path, now: float) -> HoldTable:
    """The holds saved at `path` still in force at `now`; empty when there is no file
    (an unreadable one raises OSError/ValueError/KeyError/TypeError for the caller to log)."""
    if not path.exists():
        return HoldTable()
    return from_json(path.read_text(encoding="utf-8"), now)
