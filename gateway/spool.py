"""The gateway's local spool: contacts acknowledged while the database was unreachable.

An append-only JSON Lines journal on the gateway's disk. Each record is written and fsync'd
before the provider is answered, so a contact survives `kill -9` of the gateway and a power
cut. Several gateway processes share one directory: appends take an exclusive `flock` on the
journal, replay takes another lock file, so one process replays at a time. The replayer keeps
its position in an offset file (replaced atomically after each record), so a crash mid-replay
resumes at the first record not yet stored; records are idempotent on the provider's id, so one
replayed twice is harmless. A drained journal is truncated. A record that cannot be replayed
(bad data) is moved to `rejected.jsonl` and the journal goes on.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from casestore import tracking
from gateway.settings import var_dir

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
OFFSET = "journal.offset"
REJECTED = "rejected.jsonl"
REPLAY_LOCK = "replay.lock"

Record = dict[str, Any]


def spool_dir(raw_config: Mapping[str, Any]) -> Path:
    """`[spool] dir` of the deployment file (VENTANILLA__SPOOL__DIR), else the `spool`
    directory under `[storage] var_dir`."""
    section = raw_config.get("spool", {})
    return Path(str(section.get("dir") or var_dir(raw_config) / "spool"))


class StopReplay(Exception):
    """Raised by a replay handler when the database went away again: retry later."""


class Spool:
    """One spool directory: the journal, the replayer's offset, rejected records."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory  # made on the first write: a gateway that never needs
        # the spool starts on a read-only disk all the same
        self.journal = directory / JOURNAL
        self.offset_file = directory / OFFSET
        self.rejected = directory / REJECTED
        # What this process has read of the journal (its own records and other processes'):
        # numbers in use, answers by provider id (a redelivered webhook), new cases by phone.
        self._scanned = 0
        self._numbers: set[str] = set()
        self._by_ref: dict[tuple[str, str], Record] = {}
        self._by_phone: dict[str, Record] = {}

    # ------------------------------------------------------------------ writing

    def _open_append(self) -> int:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(self.journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)

    def _scan(self, fd: int) -> None:
        """Read what was appended since the last scan (the caller holds the journal lock)."""
        size = os.fstat(fd).st_size
        if size < self._scanned or (
            size > self._scanned > 0 and os.pread(fd, 1, self._scanned - 1) != b"\n"
        ):
            # Replayed and truncated (then perhaps written again): start over from the top.
            self._scanned = 0
            self._by_ref.clear()
            self._by_phone.clear()
        if size == self._scanned:
            return
        with open(self.journal, "rb") as f:
            f.seek(self._scanned)
            for line in f:
                if not line.endswith(b"\n"):
                    break
                self._scanned += len(line)
                self._learn(line)

    def _learn(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        if record.get("number"):
            self._numbers.add(str(record["number"]))
        if record.get("provider") and record.get("provider_ref"):
            self._by_ref[(str(record["provider"]), str(record["provider_ref"]))] = record
        if record.get("number") and record.get("phone") and record.get("kind") == "sms":
            self._by_phone[str(record["phone"])] = record

    def append(
        self,
        build: Callable[[Spool], Record],
        *,
        provider: str | None = None,
        provider_ref: str | None = None,
    ) -> Record:
        """Write the record `build` makes (it may call `allocate` and `conversation`), fsync'd.

        Under the journal lock: a record already spooled for (provider, provider_ref) is
        returned as it was (a redelivered webhook) and nothing is written.
        """
        fd = self._open_append()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._scan(fd)
            if provider and provider_ref:
                known = self._by_ref.get((provider, provider_ref))
                if known is not None:
                    return dict(known, duplicate=True)
            record = build(self)
            data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A writer killed mid-line left a torn record: end it so ours stands alone.
                data = b"\n" + data
            os.write(fd, data)
            os.fsync(fd)
            self._scanned = os.fstat(fd).st_size
            self._learn(data.strip(b"\n").split(b"\n")[-1])
            return record
        finally:
            os.close(fd)  # closing releases the lock

    def allocate(self, length: int) -> str:
        """A tracking number no database case and no spooled record has (journal lock held)."""
        while True:
            number = tracking.generate(length, spooled=True)
            if number not in self._numbers:
                self._numbers.add(number)
                return number

    def conversation(self, phone: str, now: datetime, minutes: int) -> str | None:
        """The number of the case this phone opened in the spool within the window, if any."""
        record = self._by_phone.get(phone)
        if record is None:
            return None
        at = datetime.fromisoformat(str(record["received_at"]))
        return str(record["number"]) if now - at < timedelta(minutes=minutes) else None

    # ------------------------------------------------------------------ reading

    def pending(self) -> int:
        """How many records wait for replay."""
        try:
            with open(self.journal, "rb") as f:
                f.seek(self._read_offset())
                return sum(1 for line in f if line.endswith(b"\n"))
        except (FileNotFoundError, NotADirectoryError):
            return 0

    def has_pending(self) -> bool:
        """True while anything is spooled (a drained journal is truncated to nothing)."""
        try:
            return self.journal.stat().st_size > 0
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _read_offset(self) -> int:
        try:
            return int(self.offset_file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_offset(self, offset: int) -> None:
        tmp = self.offset_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, str(offset).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.offset_file)

    @contextmanager
    def _replay_lock(self) -> Iterator[bool]:
        fd = os.open(self.directory / REPLAY_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def replay(self, handle: Callable[[Record], None], reject: Callable[[bytes, str], None]) -> int:
        """Hand each waiting record to `handle`, in order; returns how many were consumed.

        `handle` raises `StopReplay` when the database is unreachable (the record stays and
        replay stops); any other exception moves the record aside through `reject`.
        """
        done = 0
        if not self.has_pending():
            return 0
        with self._replay_lock() as mine:
            if not mine:
                return 0
            offset = self._read_offset()
            with open(self.journal, "rb") as f:
                f.seek(offset)
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # being written right now, or torn: looked at when draining
                    if line.strip():
                        try:
                            record = json.loads(line)
                            if not isinstance(record, dict):
                                raise ValueError("a record is a JSON object")
                            handle(record)
                        except StopReplay:
                            return done
                        except Exception as exc:  # bad data: aside, logged, never retried
                            self._reject(line, f"{type(exc).__name__}: {exc}", reject)
                    offset += len(line)
                    self._write_offset(offset)
                    done += 1
            self._truncate_if_drained(offset, reject)
        return done

    def _reject(self, line: bytes, reason: str, reject: Callable[[bytes, str], None]) -> None:
        entry = {"reason": reason, "record": line.decode("utf-8", "replace").rstrip("\n")}
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.rejected, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, json.dumps(entry, ensure_ascii=False).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        reject(line, reason)

    def _truncate_if_drained(self, offset: int, reject: Callable[[bytes, str], None]) -> None:
        fd = self._open_append()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size > offset:
                with open(self.journal, "rb") as f:
                    f.seek(offset)
                    rest = f.read()
                if b"\n" in rest:
                    return  # appended meanwhile: the next round replays it
                # No writer holds the lock, so this is a line a killed writer left unfinished:
                # it was never acknowledged.
                self._reject(rest + b"\n", "torn record (writer killed mid-write)", reject)
            os.ftruncate(fd, 0)
            os.fsync(fd)
            self._write_offset(0)
        finally:
            os.close(fd)
