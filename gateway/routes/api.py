"""JSON API v1 (bearer tokens): cases, status changes, departments and categories."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, object_session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from casestore.cases import (
    BadCursor,
    CaseFilter,
    NoteTooLong,
    audit,
    change_status,
    get_case,
    list_cases,
)
from casestore.config import Config
from casestore.models import Case, Operator, Role
from casestore.operators import operator_departments, operator_for_token
from casestore.outbox import messages_of_case
from casestore.status import IllegalTransition, UnknownStatus
from casestore.views import case_document, rfc3339
from feedback.scores import follow_ups, scores
from gateway.forms import BadRequest, read_body
from gateway.runtime import Runtime
from sms.phone import PhoneError, contact_key, normalise_phone


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def case_json(case: Case) -> dict[str, Any]:
    """The contract's case representation, with its messages' delivery."""
    session = object_session(case)
    messages = [] if session is None else messages_of_case(session, case.id)
    return case_document(case, messages)


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _authenticate(session: Session, request: Request) -> Operator | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return operator_for_token(session, token.strip())


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="ventanilla"'}


def list_cases_view(request: Request) -> Response:
    rt = _runtime(request)
    params = request.query_params
    with rt.sessions() as session, session.begin():
        operator = _authenticate(session, request)
        if operator is None:
            return error(401, "missing or invalid bearer token", **UNAUTHORIZED)
        phone: str | None = None
        raw_phone = params.get("phone")
        if raw_phone:
            # A "+" sent unencoded in a query string arrives as a space.
            candidate = "+" + raw_phone.strip() if raw_phone.startswith(" ") else raw_phone
            try:
                phone = contact_key(normalise_phone(candidate, rt.config.country))
            except PhoneError:
                return error(400, "phone: not a phone number")
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            return error(400, "limit: must be a number")
        if not 1 <= limit <= 200:
            return error(400, "limit: must be from 1 to 200")
        flt = CaseFilter(
            departments=operator_departments(operator),
            contact_phone=phone,
            status=params.get("status") or None,
            department=params.get("department") or None,
            q=params.get("q") or None,
        )
        try:
            page, next_cursor = list_cases(session, flt, params.get("cursor") or None, limit)
        except UnknownStatus as exc:
            return error(400, str(exc))
        except BadCursor as exc:
            return error(400, str(exc))
        audit(
            session,
            operator.username,
            "case.list",
            "case",
            "*",
            {"filters": {k: v for k, v in params.items() if k != "cursor"}, "count": len(page)},
        )
        items = [case_json(case) for case in page]
    return JSONResponse({"items": items, "next": next_cursor})


def _digits(tracking_number: str) -> str:
    return "".join(ch for ch in tracking_number if ch.isdigit())


def case_view(request: Request) -> Response:
    rt = _runtime(request)
    number = _digits(request.path_params["tracking_number"])
    with rt.sessions() as session, session.begin():
        operator = _authenticate(session, request)
        if operator is None:
            return error(401, "missing or invalid bearer token", **UNAUTHORIZED)
        case = get_case(session, number, operator_departments(operator))
        if case is None:
            return error(404, "no such case")
        audit(session, operator.username, "case.view", "case", case.tracking_number)
        body = case_json(case)
    return JSONResponse(body)


async def status_view(request: Request) -> Response:
    try:
        raw = await read_body(request)  # stops reading at the limit
    except BadRequest as exc:
        return error(exc.status, exc.reason)
    try:
        payload = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        payload = None
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_change_status, request, payload)


def _change_status(request: Request, payload: Any) -> Response:
    rt = _runtime(request)
    number = _digits(request.path_params["tracking_number"])
    with rt.sessions() as session, session.begin():
        operator = _authenticate(session, request)
        if operator is None:
            return error(401, "missing or invalid bearer token", **UNAUTHORIZED)
        case = get_case(session, number, operator_departments(operator), for_update=True)
        if case is None:
            return error(404, "no such case")
        if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
            return error(400, 'body must be JSON like {"status": "in_progress", "note": "..."}')
        note = payload.get("note") or ""
        if not isinstance(note, str):
            return error(400, "note: must be a string")
        try:
            change_status(
                session,
                case,
                payload["status"],
                actor=operator.username,
                note=note,
                config=rt.config,
                sms_provider=rt.settings.sms_provider,
                voice_provider=rt.settings.voice_provider,
                surveys=rt.surveys,
            )
        except (UnknownStatus, NoteTooLong) as exc:
            session.rollback()
            return error(400, str(exc))
        except IllegalTransition as exc:
            session.rollback()
            return error(409, str(exc))
        audit(
            session,
            operator.username,
            "case.status",
            "case",
            case.tracking_number,
            {"status": payload["status"]},
        )
        session.flush()
        body = case_json(case)
    return JSONResponse(body)


def departments_json(config: Config) -> list[dict[str, Any]]:
    return [
        {"code": d.code, "name": d.label(config.default_language), "names": dict(d.name)}
        for d in config.departments.values()
    ]


def categories_json(config: Config) -> list[dict[str, Any]]:
    return [
        {
            "code": c.code,
            "name": c.label(config.default_language),
            "names": dict(c.name),
            "department": c.department,
            "urgent": c.urgent,
        }
        for c in config.categories.values()
    ]


def _with_operator(request: Request, body: Any) -> Response:
    rt = _runtime(request)
    with rt.sessions() as session:
        if _authenticate(session, request) is None:
            return error(401, "missing or invalid bearer token", **UNAUTHORIZED)
    return JSONResponse(body)


def departments_view(request: Request) -> Response:
    return _with_operator(request, departments_json(_runtime(request).config))


def categories_view(request: Request) -> Response:
    return _with_operator(request, categories_json(_runtime(request).config))


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC here: 9999-12-31T23:59:59-12:00 has no UTC time (OverflowError, not a 500).
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{name}: not an RFC 3339 time") from exc


def survey_scores_view(request: Request) -> Response:
    """CSAT, mean, response rate by department, category, channel, operator or month."""
    rt = _runtime(request)
    params = request.query_params
    with rt.sessions() as session:
        operator = _authenticate(session, request)
        if operator is None:
            return error(401, "missing or invalid bearer token", **UNAUTHORIZED)
        try:
            since = _parse_time(params.get("from"), "from")
            until = _parse_time(params.get("to"), "to")
            rows = scores(
                session,
                params.get("by", "department"),
                departments=operator_departments(operator),
                since=since,
                until=until,
                zone=rt.config.timezone,
            )
        except ValueError as exc:
            return error(400, str(exc))
    return JSONResponse({"by": params.get("by", "department"), "items": [asdict(r) for r in rows]})


def survey_follow_ups_view(request: Request) -> Response:
    """Low scores waiting for a supervisor's follow-up, oldest first (supervisors and admins,
    their departments only)."""
    rt = _runtime(request)
    with rt.sessions() as session, session.begin():
        operator = _authenticate(session, request)
        if operator is None:
            return error(401, "missing or invalid bearer token", **UNAUTHORIZED)
        if operator.role not in (Role.SUPERVISOR.value, Role.ADMIN.value):
            return error(403, "follow-ups are for supervisors and admins")
        items = [
            {
                "tracking_number": case.tracking_number,
                "department": case.department,
                "category": case.category,
                "rating": survey.rating,
                "comment": survey.comment,
                "answered_at": rfc3339(survey.answered_at),
            }
            for survey, case in follow_ups(session, operator_departments(operator))
        ]
        audit(session, operator.username, "survey.follow_ups", "survey", "*", {"count": len(items)})
    return JSONResponse({"items": items})


routes = [
    Route("/api/v1/cases", list_cases_view, methods=["GET"]),
    Route("/api/v1/surveys/scores", survey_scores_view, methods=["GET"]),
    Route("/api/v1/surveys/follow-ups", survey_follow_ups_view, methods=["GET"]),
    Route("/api/v1/cases/{tracking_number}", case_view, methods=["GET"]),
    Route("/api/v1/cases/{tracking_number}/status", status_view, methods=["POST"]),
    Route("/api/v1/departments", departments_view, methods=["GET"]),
    Route("/api/v1/categories", categories_view, methods=["GET"]),
]
