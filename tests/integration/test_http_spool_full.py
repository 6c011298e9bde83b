"""HTTP injection into a really full spool: a 2 MB tmpfs under the spool directory fills
up; the API answers 507 (SMTP 452 4.3.1) and queues nothing for that request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from tests.integration.relay_harness import RelayFactory
from tests.integration.test_admin_http import inject
from tests.support.tmpfs import mounted_tmpfs


@pytest.fixture
def small_spool(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "spool") as spool:
        yield spool


async def test_a_full_spool_answers_507_and_queues_nothing(
    small_spool: Path, relay_factory: RelayFactory
) -> None:  # small_spool first: unmounted after the relay stopped
    relay = await relay_factory('domain "one.test" { suspend_delivery = true }\n', admin=True)
    text = "x" * 76 + "\n"
    message = {"from": "s@sender.test", "to": ["r@one.test"], "text": text * 3000}  # 230 kB
    statuses = []
    for _ in range(20):  # 2 MB holds fewer than 9
        status, answer = await inject(relay, message)
        statuses.append(status)
        if status != 201:
            break
    assert statuses[-1] == 507, statuses
    assert 2 <= len(statuses) <= 10
    assert answer["smtp_reply"].startswith("452 4.3.1")
    assert len(relay.events("reception")) == len(statuses) - 1  # nothing for the refused one
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await relay.send("s@sender.test", ["r@one.test"], body=text * 3000)
    assert refused.value.code == 452
