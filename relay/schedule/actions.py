"""What the queue core (queues.py) asks its owner to do, as frozen data.

From `Queues.step` and the other events: `OpenConnection`, `Resume` (a parked connection has
mail, or must let go of its slot), `LocalDisposition` (relay decides without the receiver),
`ResolveProvider` (the MX hosts a domain's provider depends on) and,
last from `step`, `WakeAt` (when to step again). A connection asking for its next job gets
`Send`, `Wait` (until its idle deadline, or until a message throttle allows one more) or
`CLOSE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.schedule.jobs import Job
from relay.schedule.local_replies import Local
from relay.schedule.ready import Connection
from relay.schedule.route_settings import RouteSettings


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """Open a session for connection.binding x connection.domain (connection.policy)."""

    connection: Connection


@dataclass(frozen=True, slots=True)
class Resume:
    """A parked connection should ask for its next job now."""

    connection: Connection


@dataclass(frozen=True, slots=True)
class LocalDisposition:
    """Apply relay's own reply (local_replies) to every recipient of the job."""

    job: Job
    policy: RouteSettings
    reason: Local
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ResolveProvider:
    """Look up the domain's MX hosts and report them (Queues.provider_learned): its mail
    waits for its provider (providers.py) before a connection opens."""

    domain: str


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Call step() again at `at` (or sooner, when the core says there is work)."""

    at: float


Action = OpenConnection | Resume | LocalDisposition | ResolveProvider | WakeAt


@dataclass(frozen=True, slots=True)
class Send:
    """Send the job on this connection; report with Queues.job_finished."""

    job: Job
    policy: RouteSettings  # the ready queue's policy now (live values applied)


@dataclass(frozen=True, slots=True)
class Wait:
    """Ask again at `until` (or on Resume)."""

    until: float


@dataclass(frozen=True, slots=True)
class Close:
    """Close the session, then report connection_closed."""


CLOSE = Close()
Next = Send | Wait | Close
