"""The reference for relay/schedule/fair.py: its first, plainer version, kept for the
differential test test_fair_fast.py, with the one rule it gained since (a lane that empties
ends its tenant's turn). Tenants share by weight (deficit round robin), transactional mail
goes before bulk without starving it (at least bulk_share of the jobs taken while both
wait). Not used by relay itself."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from relay.schedule.jobs import Job

TRANSACTIONAL = "transactional"
BULK = "bulk"
CLASSES = (TRANSACTIONAL, BULK)


@dataclass(frozen=True, slots=True)
class Fairness:
    """The configured shares (one per configuration, shared by every queue)."""

    weights: Mapping[str, int] = field(default_factory=dict)  # tenant -> weight (>= 1)
    classes: Mapping[str, str] = field(default_factory=dict)  # tenant -> default class
    bulk_share: float = 0.1  # of the jobs taken while both classes wait, at least this bulk
    tenants: frozenset[str] = frozenset()  # every `tenant "t" {}` stanza (metrics' labels)

    def weight(self, tenant: str | None) -> int:
        return self.weights.get(tenant, 1) if tenant is not None else 1

    def class_of(self, job: Job) -> str:
        priority = job.priority
        if priority is not None:
            return priority
        if job.tenant is not None:
            return self.classes.get(job.tenant, BULK)
        return BULK


class _Class:
    """One priority class: a lane per tenant, and the ring of tenants with mail."""

    __slots__ = ("deficit", "lanes", "ring", "size")

    def __init__(self) -> None:
        self.lanes: dict[str | None, deque[Job]] = {}
        self.ring: deque[str | None] = deque()  # tenants with mail; ring[0]'s turn
        self.deficit = 0  # jobs ring[0] may still take this turn
        self.size = 0

    def settle(self, fairness: Fairness) -> deque[Job]:
        """The lane whose turn it is: drops emptied lanes, starts a turn (deficit = the
        tenant's weight) when none is running. Idempotent: peeking does not use a turn."""
        ring, lanes = self.ring, self.lanes
        while True:
            tenant = ring[0]
            lane = lanes[tenant]
            if lane:
                if self.deficit <= 0:
                    self.deficit = fairness.weight(tenant)
                return lane
            ring.popleft()
            del lanes[tenant]
            self.deficit = 0

    def took(self, lane: deque[Job]) -> None:
        """One job of ring[0]'s lane was taken: at the end of its turn, the next tenant's;
        a lane that empties ends its turn (and leaves the ring)."""
        self.size -= 1
        if not lane:
            del self.lanes[self.ring.popleft()]
            self.deficit = 0
            return
        self.deficit -= 1
        if self.deficit <= 0 and len(self.ring) > 1:
            self.ring.rotate(-1)

    def add(self, job: Job, left: bool) -> None:
        tenant = job.tenant
        lane = self.lanes.get(tenant)
        if lane is None:
            lane = self.lanes[tenant] = deque()
            self.ring.append(tenant)
        if left:
            lane.appendleft(job)
        else:
            lane.append(job)
        self.size += 1


class FairQueue:
    __slots__ = ("_bulk_run", "_classes", "_size", "fairness")

    def __init__(self, fairness: Fairness | None = None, jobs: Iterable[Job] = ()) -> None:
        self.fairness = fairness or Fairness()
        self._classes: dict[str, _Class] = {}
        self._size = 0
        self._bulk_run = 0  # transactional jobs taken in a row while bulk waited
        self.extend(jobs)

    # --- adding ------------------------------------------------------------------------
    def append(self, job: Job) -> None:
        self._add(job, left=False)

    def appendleft(self, job: Job) -> None:
        """Next in line of its lane (a requeued job keeps its place)."""
        self._add(job, left=True)

    def extend(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self._add(job, left=False)

    def _add(self, job: Job, left: bool) -> None:
        name = self.fairness.class_of(job)
        lanes = self._classes.get(name)
        if lanes is None:
            lanes = self._classes[name] = _Class()
        lanes.add(job, left)
        self._size += 1

    # --- taking ------------------------------------------------------------------------
    def _class(self) -> _Class:
        """The class whose job is next (transactional first, bulk its minimum share)."""
        classes = self._classes
        tx, bulk = classes.get(TRANSACTIONAL), classes.get(BULK)
        if tx is not None and tx.size:
            if bulk is None or not bulk.size:
                return tx
            share = self.fairness.bulk_share
            run = round(1 / share) - 1 if share > 0 else -1
            if run < 0 or self._bulk_run < run:
                return tx
            return bulk
        if bulk is not None and bulk.size:
            return bulk
        for other in classes.values():  # a class relay does not know: after both
            if other.size:
                return other
        raise IndexError("pop from an empty FairQueue")

    def __getitem__(self, index: int) -> Job:
        if index != 0:
            raise IndexError("a FairQueue only shows its next job")
        return self._class().settle(self.fairness)[0]

    def popleft(self) -> Job:
        chosen = self._class()
        lane = chosen.settle(self.fairness)
        job = lane.popleft()
        chosen.took(lane)
        self._size -= 1
        if chosen is self._classes.get(TRANSACTIONAL):
            bulk = self._classes.get(BULK)
            self._bulk_run = self._bulk_run + 1 if bulk is not None and bulk.size else 0
        else:
            self._bulk_run = 0
        return job

    # --- the rest of the deque API the core uses ------------------------------------------
    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Job]:
        for lanes in self._classes.values():
            for lane in lanes.lanes.values():
                yield from lane

    def clear(self) -> None:
        self._classes.clear()
        self._size = 0
        self._bulk_run = 0
