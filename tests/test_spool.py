"""The spool's journal: order, idempotence, a crash mid-replay, bad and torn records."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gateway.spool import Record, Spool, StopReplay


def _add(spool: Spool, ref: str, text: str = "hola") -> Record:
    return spool.append(
        lambda s: {
            "kind": "sms",
            "provider": "twilio",
            "provider_ref": ref,
            "text": text,
            "number": s.allocate(10),
        },
        provider="twilio",
        provider_ref=ref,
    )


def test_records_are_replayed_in_order_then_the_journal_is_emptied(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    numbers = [_add(spool, f"SM{i}")["number"] for i in range(5)]
    assert len(set(numbers)) == 5 and all(n.startswith("9") for n in numbers)
    assert stat.S_IMODE(spool.journal.stat().st_mode) == 0o600
    assert spool.pending() == 5 and spool.has_pending()
    seen: list[str] = []
    assert spool.replay(lambda r: seen.append(r["provider_ref"]), lambda *_: None) == 5
    assert seen == [f"SM{i}" for i in range(5)]
    assert spool.pending() == 0 and not spool.has_pending()


def test_a_redelivered_contact_is_spooled_once_with_the_same_number(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = _add(spool, "SMsame")
    again = Spool(tmp_path / "spool")  # another gateway process on the same directory
    second = _add(again, "SMsame")
    assert second["duplicate"] and second["number"] == first["number"]
    assert spool.pending() == 1


def test_a_replay_cut_short_resumes_at_the_first_record_not_stored(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for i in range(4):
        _add(spool, f"SM{i}")
    stored: list[str] = []

    def crash_on_third(record: Record) -> None:
        if record["provider_ref"] == "SM2":
            raise KeyboardInterrupt  # the process dies mid-replay
        stored.append(record["provider_ref"])

    with pytest.raises(KeyboardInterrupt):
        spool.replay(crash_on_third, lambda *_: None)

    def down_again(record: Record) -> None:
        raise StopReplay

    restarted = Spool(tmp_path / "spool")
    assert restarted.replay(down_again, lambda *_: None) == 0
    assert restarted.pending() == 2
    restarted.replay(lambda r: stored.append(r["provider_ref"]), lambda *_: None)
    assert stored == ["SM0", "SM1", "SM2", "SM3"]


def test_a_record_that_cannot_be_stored_is_moved_aside_and_replay_goes_on(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool")
    _add(spool, "SM1", "bad")
    _add(spool, "SM2")
    handed: list[str] = []
    stored: list[str] = []

    def handle(record: Record) -> None:
        if record["text"] == "bad":
            raise ValueError("unknown category")
        stored.append(record["provider_ref"])

    spool.replay(handle, lambda line, reason: handed.append(reason))
    assert stored == ["SM2"] and handed == ["ValueError: unknown category"]
    (rejected,) = spool.rejected.read_text().splitlines()
    assert json.loads(json.loads(rejected)["record"])["provider_ref"] == "SM1"


def test_a_line_torn_by_a_killed_writer_never_swallows_the_next_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    _add(spool, "SM1")
    with spool.journal.open("ab") as f:
        f.write(b'{"kind": "sms", "provider_ref": "SMtor')  # killed before the newline
    _add(spool, "SM2")
    stored: list[str] = []
    reasons: list[str] = []
    spool.replay(lambda r: stored.append(r["provider_ref"]), lambda _, why: reasons.append(why))
    assert stored == ["SM1", "SM2"] and len(reasons) == 1
    assert not spool.has_pending()
