"""Keeping a contact the database refused: a `dead_letters` row, or a file when even that fails.

This is for contacts the database *refuses* (it is up, but will not take a value). A database
that cannot be reached is another matter (a 503, or the outage spool): see `is_unreachable`.
The file is `<[storage] var_dir>/dead-letters.jsonl`, one JSON object a line, fsync'd; marking
one of its letters handled appends a line that says so.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from casestore import dead_letters
from casestore.config import Config
from casestore.dead_letters import Letter, encode_payload
from gateway.settings import var_dir

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

FILE_NAME = "dead-letters.jsonl"


def letters_file(config: Config) -> Path:
    return var_dir(config.raw) / FILE_NAME


def describe(exc: BaseException) -> str:
    """The error as an operator reads it: its class and first line, no values from SQL."""
    first = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:500]


def _keep_in_database(rt: Runtime, letter: Letter) -> int:
    with rt.sessions() as session, session.begin():
        return dead_letters.keep(session, letter)


def _append(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(dict(record), ensure_ascii=True, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _keep_in_file(config: Config, letter: Letter) -> str:
    key = uuid.uuid4().hex
    _append(
        letters_file(config),
        {
            "id": key,
            "received_at": letter.received_at.isoformat(),
            "channel": letter.channel,
            "provider": letter.provider,
            "route": letter.route,
            "provider_ref": letter.provider_ref,
            "department": letter.department,
            "payload": encode_payload(letter.fields),
            "error": letter.error,
        },
    )
    return key


def keep_sync(rt: Runtime, letter: Letter) -> bool:
    """Keep `letter` in the database, else in the file; False only when both failed."""
    try:
        letter_id = _keep_in_database(rt, letter)
        log.error("contact kept as dead letter %s (%s): %s", letter_id, letter.route, letter.error)
        return True
    except Exception as exc:  # the database refused this too (or went away meanwhile)
        log.error("dead letter refused by the database (%s); writing the file", describe(exc))
    try:
        key = _keep_in_file(rt.config, letter)
        log.error("contact kept as dead letter %s in %s", key, letters_file(rt.config))
        return True
    except OSError:
        log.exception("could not keep a dead letter anywhere")
        return False


async def keep(
    rt: Runtime,
    *,
    channel: str,
    provider: str,
    route: str,
    provider_ref: str | None,
    department: str | None,
    fields: Mapping[str, str],
    exc: BaseException,
) -> bool:
    """Keep a contact the database refused; see `keep_sync`."""
    letter = Letter(
        received_at=datetime.now(UTC),
        channel=channel,
        provider=provider,
        route=route,
        provider_ref=provider_ref,
        department=department,
        fields=dict(fields),
        error=describe(exc),
    )
    return await run_in_threadpool(keep_sync, rt, letter)


# ---------------------------------------------------------------- the file's letters
@dataclass(frozen=True)
class FileLetter:
    """A letter kept in the file (the database refused it too): admins see these."""

    id: str
    received_at: str
    channel: str
    provider: str
    route: str
    provider_ref: str | None
    payload: str
    error: str
    resolved_by: str | None


def file_letters(config: Config) -> list[FileLetter]:
    """Every letter in the file, with who marked it handled (if anyone)."""
    path = letters_file(config)
    if not path.exists():
        return []
    letters: dict[str, dict[str, Any]] = {}
    resolved: dict[str, str] = {}
    for line in path.read_text("ascii", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if "resolved" in record:
            resolved[str(record["resolved"])] = str(record.get("by", "?"))
        elif "id" in record:
            letters[str(record["id"])] = record
    return [
        FileLetter(
            id=key,
            received_at=str(r.get("received_at", "")),
            channel=str(r.get("channel", "")),
            provider=str(r.get("provider", "")),
            route=str(r.get("route", "")),
            provider_ref=r.get("provider_ref"),
            payload=str(r.get("payload", "")),
            error=str(r.get("error", "")),
            resolved_by=resolved.get(key),
        )
        for key, r in letters.items()
    ]


def resolve_file_letter(config: Config, key: str, actor: str, now: datetime) -> bool:
    """Mark a file letter handled (an appended line); False when there is no such letter."""
    if key not in {letter.id for letter in file_letters(config)}:
        return False
    _append(letters_file(config), {"resolved": key, "by": actor, "at": now.isoformat()})
    return True
