from __future__ import annotations

import logging
from pathlib import Path

import pytest

from relay.spool import NewMessage, Spool
from relay.spool.format import SEGMENT_HEADER_SIZE, TRAILER_SIZE
from relay.spool.segments import PREALLOCATE
from tests.unit.spool.helpers import leftovers, message, segments


async def _three(directory: Path) -> tuple[list[str], list[NewMessage], int]:
    """Store three messages in one segment; returns ids, messages, and the record length."""
    news = [message(i, size=1000) for i in range(3)]
    async with await Spool.open(directory) as spool:
        ids = [(await spool.store(new)).message_id for new in news]
    [segment] = segments(directory)
    length = (segment.stat().st_size - SEGMENT_HEADER_SIZE) // 3
    return ids, news, length


async def _reopen_ids(directory: Path) -> tuple[Spool, set[str]]:
    spool = await Spool.open(directory, max_resident_messages=0)
    return spool, {e.message_id for e in spool.scan()}


def _quarantined(directory: Path) -> list[Path]:
    return sorted(p for p in (directory / "quarantine").iterdir() if p.suffix != ".reason")


async def test_flipped_byte_is_quarantined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids, news, length = await _three(tmp_path)
    [segment] = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[SEGMENT_HEADER_SIZE + length + length // 2] ^= 0xFF  # inside the second message
    segment.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR):
        spool, found = await _reopen_ids(tmp_path)
    assert found == {ids[0], ids[2]}
    assert await spool.load(ids[2]) == news[2].content
    assert spool.statistics().quarantined == 1
    [bad] = _quarantined(tmp_path)
    assert bad.stat().st_size == length
    assert "checksum mismatch" in bad.with_name(bad.name + ".reason").read_text()
    assert "quarantined" in caplog.text and "checksum" in caplog.text
    await spool.close()
    # The segment was rewritten without the bad record: nothing new is quarantined.
    spool, found = await _reopen_ids(tmp_path)
    assert found == {ids[0], ids[2]} and spool.statistics().quarantined == 0
    assert await spool.load(ids[2]) == news[2].content
    await spool.close()


async def test_missing_end_marker_is_quarantined(tmp_path: Path) -> None:
    ids, _, length = await _three(tmp_path)
    [segment] = segments(tmp_path)
    data = segment.read_bytes()
    cut = SEGMENT_HEADER_SIZE + 2 * length - TRAILER_SIZE + 4  # the second record's end marker
    segment.write_bytes(data[:cut] + data[cut + 4 :])
    spool, found = await _reopen_ids(tmp_path)
    assert found == {ids[0], ids[2]}
    [bad] = _quarantined(tmp_path)
    assert "end marker" in bad.with_name(bad.name + ".reason").read_text()
    await spool.close()


async def test_truncated_segment_loses_only_the_torn_record(tmp_path: Path) -> None:
    ids, news, length = await _three(tmp_path)
    [segment] = segments(tmp_path)
    size = segment.stat().st_size
    with segment.open("r+b") as f:
        f.truncate(size - length // 2)
    spool, found = await _reopen_ids(tmp_path)
    assert found == {ids[0], ids[1]}
    assert spool.statistics().partial_discarded == 1
    assert spool.recovery_report.torn_tails
    [kept] = [p for p in (tmp_path / "quarantine").iterdir() if p.suffix == ".torn"]
    assert kept.read_bytes() and (tmp_path / "quarantine" / (kept.name + ".reason")).exists()
    assert await spool.load(ids[1]) == news[1].content
    await spool.close()
    assert segment.stat().st_size == size - length  # the tail was cut off the file


async def test_zeros_written_ahead_are_cut_off_without_a_word(tmp_path: Path) -> None:
    """A killed relay leaves the active segment's zeros (segments.PREALLOCATE) on disk."""
    ids, news, _ = await _three(tmp_path)
    [segment] = segments(tmp_path)
    size = segment.stat().st_size
    segment.write_bytes(segment.read_bytes() + bytes(PREALLOCATE))
    spool, found = await _reopen_ids(tmp_path)
    assert found == set(ids)
    assert not spool.recovery_report.torn_tails and not spool.recovery_report.quarantined
    assert not list((tmp_path / "quarantine").iterdir())
    assert await spool.load(ids[2]) == news[2].content
    await spool.close()
    assert segment.stat().st_size == size


async def test_an_append_torn_in_the_zeros_written_ahead_is_a_torn_tail(tmp_path: Path) -> None:
    """Not a corrupt record: its header announces more than the bytes before the zeros."""
    ids, _, length = await _three(tmp_path)
    [segment] = segments(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[: -length // 2] + bytes(PREALLOCATE))
    spool, found = await _reopen_ids(tmp_path)
    assert found == {ids[0], ids[1]}
    assert spool.statistics().partial_discarded == 1 and spool.statistics().quarantined == 0
    [kept] = [p for p in (tmp_path / "quarantine").iterdir() if p.suffix == ".torn"]
    assert kept.read_bytes() == data[len(data) - length : -length // 2]
    await spool.close()
    assert segment.stat().st_size == len(data) - length


async def test_truncated_end_marker_of_last_record(tmp_path: Path) -> None:
    ids, _, _ = await _three(tmp_path)
    [segment] = segments(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-4])
    spool, found = await _reopen_ids(tmp_path)
    assert found == {ids[0], ids[1]}
    await spool.close()


async def test_not_a_segment_is_quarantined_whole(tmp_path: Path) -> None:
    ids, _, _ = await _three(tmp_path)
    (tmp_path / "000000000000.seg").write_bytes(b"garbage that is not a segment")
    spool, found = await _reopen_ids(tmp_path)
    assert found == set(ids)
    assert [p.name for p in _quarantined(tmp_path)] == ["000000000000.seg"]
    await spool.close()


async def test_temporary_and_partial_files_removed_on_open(tmp_path: Path) -> None:
    ids, _, _ = await _three(tmp_path)
    (tmp_path / "000000000099.seg.tmp").write_bytes(b"RLYSPOOL half")
    [segment] = segments(tmp_path)
    with segment.open("ab") as f:
        f.write(b"RLR1\x01")  # an append cut short inside its header
    spool, found = await _reopen_ids(tmp_path)
    assert found == set(ids)
    assert leftovers(tmp_path) == []
    assert spool.statistics().partial_discarded == 2
    assert spool.statistics().quarantined == 0
    await spool.close()


async def test_quarantined_update_leaves_older_state(tmp_path: Path) -> None:
    from relay.spool import Recipient

    async with await Spool.open(tmp_path) as spool:
        envelope = await spool.store(message(1))
        await spool.update_recipients(
            envelope.message_id, [Recipient("rcpt0@example.net", attempts=1)]
        )
        await spool.store(message(2))
    [segment] = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    # The UPDATE record is small and sits between the two messages: corrupt one of its bytes.
    position = bytes(data).find(b'"rcpt":[[0,')
    data[position] ^= 0x01
    segment.write_bytes(bytes(data))
    spool = await Spool.open(tmp_path)
    assert spool.get(envelope.message_id).recipients[0].attempts == 0
    assert len(spool.scan()) == 2 and spool.statistics().quarantined == 1
    await spool.close()
