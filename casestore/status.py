"""Case status rules: the transition table of the contract, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from casestore.states import CaseStatus, is_open

S = CaseStatus
TRANSITIONS: Mapping[CaseStatus, frozenset[CaseStatus]] = {
    S.NEW: frozenset({S.ASSIGNED, S.IN_PROGRESS, S.WAITING_CITIZEN, S.RESOLVED, S.CLOSED}),
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.WAITING_CITIZEN, S.RESOLVED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.WAITING_CITIZEN, S.RESOLVED, S.CLOSED}),
    S.WAITING_CITIZEN: frozenset({S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.CLOSED: frozenset({S.IN_PROGRESS}),
}


def is_overdue(due_at: datetime | None, status: str, now: datetime) -> bool:
    """Past its due time and still open: the console badge and the list filter agree."""
    return due_at is not None and due_at < now and is_open(status)


class UnknownStatus(ValueError):
    """Not one of the case statuses."""


class IllegalTransition(ValueError):
    """The transition table does not allow this change (including to the same status)."""


def parse_status(value: object) -> CaseStatus:
    try:
        return CaseStatus(str(value))
    except ValueError as exc:
        allowed = ", ".join(s.value for s in CaseStatus)
        raise UnknownStatus(f"unknown status {value!r}; expected one of {allowed}") from exc


def check_transition(current: CaseStatus, target: CaseStatus) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current]))
        raise IllegalTransition(
            f"cannot go from {current.value} to {target.value}; allowed: {allowed}"
        )
