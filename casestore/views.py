"""How a case, its timeline, its messages and its survey are shown: one set of fields for the
JSON API and the console.

Times go through `when`: RFC 3339 text for the API (`rfc3339`), the deployment's local time for
the console's templates. No web imports: the routes and the console both call these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from casestore.models import Case, CaseEvent, OutboundMessage, Survey
from casestore.people import shown_phone

When = Callable[[datetime], Any]


def rfc3339(value: datetime | None) -> str | None:
    """A UTC time as the API writes it (`2026-12-04T18:24:46.123456Z`); None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(value: datetime | None, when: When) -> Any:
    return None if value is None else when(value)


def case_fields(case: Case, when: When) -> dict[str, Any]:
    """The case itself: what a list row and the API's case both show."""
    return {
        "tracking_number": case.tracking_number,
        "status": case.status,
        "channel": case.channel,
        "category": case.category,
        "department": case.department,
        "priority": case.priority,
        "urgent": case.urgent,
        "description": case.description,
        "created_at": when(case.created_at),
        "updated_at": when(case.updated_at),
        "first_response_at": _time(case.first_response_at, when),
        "resolved_at": _time(case.resolved_at, when),
        "closed_at": _time(case.closed_at, when),
    }


def event_fields(event: CaseEvent, when: When) -> dict[str, Any]:
    """One entry of a case's timeline."""
    return {
        "kind": event.kind,
        "at": when(event.at),
        "actor": event.actor,
        "text": event.text,
        "from_status": event.from_status,
        "to_status": event.to_status,
    }


def message_fields(message: OutboundMessage, when: When) -> dict[str, Any]:
    """A message to the citizen and how its delivery went: a retried one shows "pending" with
    the last error, one given up on "failed"."""
    return {
        "kind": message.kind,
        "channel": message.channel,
        "status": message.status,
        "attempts": message.attempts,
        "error_code": message.error_code,
        "error": message.error,
        "updated_at": when(message.updated_at),
    }


def survey_fields(survey: Survey | None, when: When) -> dict[str, Any] | None:
    """The case's satisfaction survey, if it has one."""
    if survey is None:
        return None
    return {
        "status": survey.status,
        "rating": survey.rating,
        "comment": survey.comment,
        "channel": survey.channel,
        "due_at": when(survey.due_at),
        "asked_at": _time(survey.asked_at, when),
        "answered_at": _time(survey.answered_at, when),
        "low_score": survey.low_score,
    }


def case_document(
    case: Case, messages: Iterable[OutboundMessage], when: When = rfc3339
) -> dict[str, Any]:
    """The contract's whole case: the case, the citizen, the timeline, the survey and the
    messages (the last an extension of the contract)."""
    return {
        **case_fields(case, when),
        "citizen": {
            "phone": shown_phone(case.contact),
            "name": case.citizen_name,
            "national_id": case.national_id,
        },
        "events": [event_fields(e, when) for e in case.events],
        "survey": survey_fields(case.survey, when),
        "messages": [message_fields(m, when) for m in messages],
    }
