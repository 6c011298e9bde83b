"""Signing off the event loop: a thread pool, one thread per core.

The key operation is OpenSSL's and releases the GIL (an RSA-2048 signature is about a
millisecond), so threads use every core without a process hop; the event loop only pays
for handing the job over and back.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from relay.sign.settings import Profile
from relay.sign.signer import Signed, sign_message

_executor: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The process's signing threads (made on first use; one per core)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="dkim"
        )
    return _executor


def sign_in_pool(
    content: bytes, profiles: Sequence[Profile], *, authenticated: bool, now: float
) -> asyncio.Future[Signed]:
    """The future of `sign_message(...)`, computed in a signing thread."""
    job = functools.partial(sign_message, content, profiles, authenticated=authenticated, now=now)
    return asyncio.get_running_loop().run_in_executor(executor(), job)
