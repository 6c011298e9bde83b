"""A fair queue of jobs: tenants share by weight (deficit round robin), transactional mail
goes before bulk without starving it. Pure; a drop-in for the deque the queue core kept
per (binding group, domain) and per binding x domain (the methods it uses: append,
appendleft, popleft, [0], len, bool, iteration, clear, extend).

Lanes are (priority class, tenant). Within a class, the tenants with mail take turns: each
turn a tenant sends up to its weight (`tenant "t" { weight = 3 }`, default 1) before the
next one's turn, so a tenant with a million queued messages delays another tenant's one
message by at most its weight per turn. Between classes, transactional goes first, but
when bulk is waiting, at least `bulk_share` of the jobs taken are bulk (one bulk job after
each run of round(1 / bulk_share) - 1 transactional ones). Every operation is O(1).

Which tenant and class a job is in is the job's (`Job.tenant`, `Job.priority`), with the
tenant's configured class (`tenant "t" { priority_class = ... }`) when the job names none.

A lane that empties ends its tenant's turn (deficit round robin's rule): the ring holds only
tenants with mail.

Every message passes through two of these (the due FIFO, then the ready queue), so the hot
path is short. While the queue holds a single lane (one tenant, one class: the common case)
its jobs sit in one deque (`_lane`) and append, [0] and popleft touch only it; the classes
and rings are built when a second lane appears and dropped when one lane is left. The core
reads `size` (an attribute) rather than len(). tests/unit/schedule/test_fair_fast.py checks
the queue against the plain version (tests/unit/schedule/fair_reference.py) on random
operation sequences.
"""

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
    # Transactional jobs taken in a row while bulk waits (-1: no limit); from bulk_share.
    tx_run: int = field(init=False, default=-1)

    def __post_init__(self) -> None:
        share = self.bulk_share
        object.__setattr__(self, "tx_run", round(1 / share) - 1 if share > 0 else -1)

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
        self.deficit = 0  # jobs ring[0] may still take this turn (<= 0: its turn starts)
        self.size = 0

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
    """Jobs in lanes by (class, tenant); `size` is how many (also len())."""

    __slots__ = (
        "_bulk",
        "_bulk_run",
        "_class",
        "_deficit",
        "_fairness",
        "_lane",
        "_others",
        "_tenant",
        "_tx",
        "_weight",
        "size",
    )

    def __init__(self, fairness: Fairness | None = None, jobs: Iterable[Job] = ()) -> None:
        self._fairness = fairness or Fairness()
        # Single-lane mode (_lane is not None): every job is in _lane, of class _class and
        # tenant _tenant, whose turn has _deficit jobs left (weight _weight); the classes
        # below are empty. Otherwise the jobs are in the classes.
        self._lane: deque[Job] | None = deque()
        self._class = BULK
        self._tenant: str | None = None
        self._deficit = 0
        self._weight = 1
        self._tx: _Class | None = None
        self._bulk: _Class | None = None
        self._others: dict[str, _Class] | None = None  # classes relay does not know
        self.size = 0
        self._bulk_run = 0  # transactional jobs taken in a row while bulk waited
        if jobs:
            self.extend(jobs)

    @property
    def fairness(self) -> Fairness:
        return self._fairness

    @fairness.setter
    def fairness(self, fairness: Fairness) -> None:
        """New shares (a reload): turns started keep their length."""
        self._fairness = fairness
        tenant = self._tenant
        self._weight = fairness.weights.get(tenant, 1) if tenant is not None else 1

    # --- adding ------------------------------------------------------------------------
    def append(self, job: Job) -> None:
        tenant = job.tenant
        name = job.priority
        if name is None:
            classes = self._fairness.classes
            name = classes.get(tenant, BULK) if tenant is not None and classes else BULK
        lane = self._lane
        if lane is not None:
            if not self.size:  # the empty lane becomes this job's
                self._class, self._tenant, self._deficit = name, tenant, 0
                weights = self._fairness.weights
                self._weight = weights.get(tenant, 1) if tenant is not None and weights else 1
                lane.append(job)
                self.size = 1
                return
            if tenant == self._tenant and name == self._class:
                lane.append(job)
                self.size += 1
                return
            self._spread()
        if name == BULK:
            chosen = self._bulk
            if chosen is None:
                chosen = self._bulk = _Class()
        else:
            chosen = self._class_named(name)
        lanes = chosen.lanes
        found = lanes.get(tenant)
        if found is None:
            found = lanes[tenant] = deque()
            chosen.ring.append(tenant)
        found.append(job)
        chosen.size += 1
        self.size += 1

    def appendleft(self, job: Job) -> None:
        """Next in line of its lane (a requeued job keeps its place)."""
        name = self._fairness.class_of(job)
        lane = self._lane
        if lane is not None:
            if not self.size:
                self._start(name, job.tenant)
            elif job.tenant != self._tenant or name != self._class:
                self._spread()
                self._class_named(name).add(job, True)
                self.size += 1
                return
            lane.appendleft(job)
            self.size += 1
            return
        self._class_named(name).add(job, True)
        self.size += 1

    def extend(self, jobs: Iterable[Job]) -> None:
        append = self.append
        for job in jobs:
            append(job)

    def _start(self, name: str, tenant: str | None) -> None:
        """The empty single lane becomes (name, tenant)'s."""
        self._class, self._tenant, self._deficit = name, tenant, 0
        self._weight = self._fairness.weights.get(tenant, 1) if tenant is not None else 1

    def _spread(self) -> None:
        """A second lane: the single lane moves into its class (its turn kept)."""
        lane = self._lane
        assert lane is not None
        chosen = self._class_named(self._class)
        chosen.lanes[self._tenant] = lane
        chosen.ring.append(self._tenant)
        chosen.deficit = self._deficit
        chosen.size = len(lane)
        self._lane = None

    def _gather(self) -> None:
        """At most one lane left (its class's ring[0]): back to single-lane mode."""
        for chosen in (self._tx, self._bulk, *(self._others or {}).values()):
            if chosen is not None and chosen.size:
                tenant = chosen.ring[0]
                self._lane = chosen.lanes[tenant]
                self._start(self._name_of(chosen), tenant)
                self._deficit = chosen.deficit
                break
        else:
            self._lane = deque()
            self._deficit = 0
        self._tx = self._bulk = self._others = None

    def _name_of(self, chosen: _Class) -> str:
        if chosen is self._tx:
            return TRANSACTIONAL
        if chosen is self._bulk:
            return BULK
        return next(name for name, c in (self._others or {}).items() if c is chosen)

    def _class_named(self, name: str) -> _Class:
        if name == BULK:
            if self._bulk is None:
                self._bulk = _Class()
            return self._bulk
        if name == TRANSACTIONAL:
            if self._tx is None:
                self._tx = _Class()
            return self._tx
        others = self._others
        if others is None:
            others = self._others = {}
        found = others.get(name)
        if found is None:
            found = others[name] = _Class()
        return found

    # --- taking ------------------------------------------------------------------------
    def _next_class(self) -> _Class:
        """The class whose job is next (transactional first, bulk its minimum share)."""
        tx, bulk = self._tx, self._bulk
        if tx is not None and tx.size:
            if bulk is None or not bulk.size:
                return tx
            run = self._fairness.tx_run
            if run < 0 or self._bulk_run < run:
                return tx
            return bulk
        if bulk is not None and bulk.size:
            return bulk
        for other in (self._others or {}).values():  # a class relay does not know: after both
            if other.size:
                return other
        raise IndexError("pop from an empty FairQueue")

    def __getitem__(self, index: int) -> Job:
        if index != 0:
            raise IndexError("a FairQueue only shows its next job")
        lane = self._lane
        if lane is not None:
            return lane[0]  # IndexError when empty
        chosen = self._bulk
        tx = self._tx
        if chosen is None or not chosen.size or (tx is not None and tx.size):
            chosen = self._next_class()
        return chosen.lanes[chosen.ring[0]][0]

    def popleft(self) -> Job:
        lane = self._lane
        if lane is not None:
            job = lane.popleft()  # IndexError when empty
            self.size -= 1
            if lane:
                deficit = self._deficit
                self._deficit = (self._weight if deficit <= 0 else deficit) - 1
            else:
                self._deficit = 0  # the lane emptied: its turn ends
            if self._bulk_run:
                self._bulk_run = 0
            return job
        bulk, tx = self._bulk, self._tx
        chosen = bulk
        if chosen is None or not chosen.size or (tx is not None and tx.size):
            chosen = self._next_class()
        ring = chosen.ring
        tenant = ring[0]
        lane = chosen.lanes[tenant]
        job = lane.popleft()
        chosen.size -= 1
        self.size -= 1
        if chosen is tx:
            self._bulk_run = self._bulk_run + 1 if bulk is not None and bulk.size else 0
        elif self._bulk_run:
            self._bulk_run = 0
        if lane:
            deficit = chosen.deficit
            if deficit <= 0:  # its turn starts
                weights = self._fairness.weights
                deficit = weights.get(tenant, 1) if tenant is not None else 1
            chosen.deficit = deficit - 1
            if deficit <= 1 and len(ring) > 1:
                ring.rotate(-1)  # its turn is over: the next tenant's
        else:  # the lane emptied: its turn ends
            ring.popleft()
            del chosen.lanes[tenant]
            chosen.deficit = 0
            if self._lanes_left() <= 1:
                self._gather()
        return job

    def _lanes_left(self) -> int:
        return sum(
            len(c.ring)
            for c in (self._tx, self._bulk, *(self._others or {}).values())
            if c is not None
        )

    # --- the rest of the deque API the core uses ------------------------------------------
    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __iter__(self) -> Iterator[Job]:
        if self._lane is not None:
            yield from self._lane
            return
        for lanes in (self._tx, self._bulk, *(self._others or {}).values()):
            if lanes is not None:
                for lane in lanes.lanes.values():
                    yield from lane

    def clear(self) -> None:
        self._tx = self._bulk = self._others = None
        self._lane = deque()
        self._deficit = 0
        self.size = 0
        self._bulk_run = 0
