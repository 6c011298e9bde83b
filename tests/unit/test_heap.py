"""relay.heap: the collector's policy, checked in a child process (the test run's own
collector stays as it is)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import gc, weakref
    from relay import heap

    class Node:
        pass

    class Config:
        pass

    built = [Config() for _ in range(1000)]  # what start-up builds
    heap.settle()
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD, gc.get_threshold()
    assert gc.get_freeze_count() >= 1000, gc.get_freeze_count()
    # what start-up built is out of the collector's walk
    assert not any(o is built[0] for o in gc.get_objects()), "start-up object still walked"
    # a cycle made afterwards is still found and freed
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None, "a cycle made after settle() was not collected"
    # a cycle among what start-up built, dropped by a reload: found after resettle()
    old_a, old_b = built[1], built[2]
    old_a.other, old_b.other = old_b, old_a
    heap.settle()  # frozen with the cycle in it
    dropped = weakref.ref(old_a)
    del old_a, old_b, built[1:3]
    gc.collect()
    assert dropped() is not None, "frozen objects are not walked"
    heap.resettle()
    assert dropped() is None, "resettle() left a dropped cycle frozen"
    # and frozen objects are freed by reference counting as before
    probe = weakref.ref(built[0])
    del built
    assert probe() is None, "a frozen object outlived its last reference"
    print("ok")
    """
)


def test_settle_freezes_start_up_and_spaces_young_collections() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
