"""Child process for the spool crash test: store, update and remove from many tasks forever.

Prints one line per operation only after the spool acknowledged it, and flushes:
  S <task> <message id> <sha256 of content>
  U <task> <message id> <attempts>
  R <task> <message id>
A task's next operation on a message it printed S for (an update or a removal) may have
completed without being printed when the process dies.
Usage: python spool_writer_proc.py DIRECTORY [SEGMENT_BYTES]
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys

from relay.spool import NewMessage, Recipient, Spool


async def writer(spool: Spool, n: int) -> None:
    rng = random.Random(os.getpid() * 1000 + n)
    out = sys.stdout
    while True:
        content = os.urandom(rng.randint(100, 6000))
        envelope = await spool.store(
            NewMessage("s@example.com", ("a@example.net", "b@example.net"), "g", None, content, 0.0)
        )
        out.write(f"S {n} {envelope.message_id} {hashlib.sha256(content).hexdigest()}\n")
        out.flush()
        roll = rng.random()
        if roll < 0.3:
            attempts = rng.randint(1, 9)
            await spool.update_recipients(
                envelope.message_id, [Recipient("a@example.net", attempts=attempts)]
            )
            out.write(f"U {n} {envelope.message_id} {attempts}\n")
            out.flush()
        elif roll < 0.6:
            await spool.remove(envelope.message_id)
            out.write(f"R {n} {envelope.message_id}\n")
            out.flush()


async def main() -> None:
    directory = sys.argv[1]
    segment_bytes = int(sys.argv[2]) if len(sys.argv) > 2 else 256 * 1024
    spool = await Spool.open(directory, segment_bytes=segment_bytes)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await asyncio.gather(*(writer(spool, n) for n in range(20)))


if __name__ == "__main__":
    asyncio.run(main())
