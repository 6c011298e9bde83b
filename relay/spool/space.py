"""How long the spool trusts a statvfs answer before asking the filesystem again.

Before taking a new message the spool makes sure it leaves the space kept for delivery
records (store.py). Asking the filesystem for every message cost about 2% of the event
loop at 1,250 messages/s; an answer now stands for SPACE_TRUSTED seconds and for half of the
bytes it left above the kept space, whichever runs out first. The other half is for what the
allowance does not see: the spool's own outcome records and any other writer on the
filesystem. Close to the kept space the allowance is small, so every message asks again
there, where the answer matters. Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass

SPACE_TRUSTED = 0.05  # seconds a statvfs answer stands for


@dataclass(slots=True)
class SpaceAllowance:
    left: int = 0  # bytes new mail may still take without asking
    until: float = float("-inf")  # and until when

    def take(self, size: int, now: float) -> bool:
        """True if `size` bytes fit in what the last answer allowed (they are taken from it);
        False: ask the filesystem."""
        if size <= self.left and now < self.until:
            self.left -= size
            return True
        return False

    def grant(self, above_kept: int, size: int, now: float) -> None:
        """The filesystem had `above_kept` bytes free beyond the kept space, and a message of
        `size` bytes is taken now."""
        self.left = max(0, above_kept - size) // 2
        self.until = now + SPACE_TRUSTED

    def revoke(self) -> None:
        """Ask again next time (the filesystem was short, or a write failed for want of it)."""
        self.left = 0
