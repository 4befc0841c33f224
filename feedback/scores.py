"""Satisfaction figures: CSAT (share of 4-5), mean rating, response rate, by a dimension."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from casestore.models import Case, CaseEvent, Survey
from casestore.states import CaseStatus

DIMENSIONS = ("department", "category", "channel", "operator", "month", "all")
ASKED = ("asked", "rated", "done", "expired")


class UnknownDimension(ValueError):
    """Scores can be grouped only by one of DIMENSIONS."""


@dataclass(frozen=True)
class Score:
    key: str
    asked: int
    answered: int
    csat: float | None  # share of answers rated 4 or 5
    mean: float | None
    response_rate: float | None
    low_scores: int


def _closer(session: Session, case_ids: Collection[int]) -> dict[int, str]:
    """Who closed each case (the last status change to closed)."""
    rows = session.execute(
        select(CaseEvent.case_id, CaseEvent.actor)
        .where(
            CaseEvent.case_id.in_(list(case_ids)), CaseEvent.to_status == CaseStatus.CLOSED.value
        )
        .order_by(CaseEvent.id)
    )
    return {case_id: actor for case_id, actor in rows}


def scores(
    session: Session,
    by: str,
    *,
    departments: Collection[str] | None,
    since: datetime | None = None,
    until: datetime | None = None,
    zone: ZoneInfo | None = None,
) -> list[Score]:
    """Scores of surveys asked in [since, until), grouped by `by`, for visible departments."""
    if by not in DIMENSIONS:
        raise UnknownDimension(f"unknown dimension {by!r}; expected one of {', '.join(DIMENSIONS)}")
    query = (
        select(Survey, Case)
        .join(Case, Case.id == Survey.case_id)
        .where(Survey.asked_at.is_not(None), Survey.status.in_(ASKED))
    )
    if departments is not None:
        query = query.where(Case.department.in_(list(departments)))
    if since is not None:
        query = query.where(Survey.asked_at >= since)
    if until is not None:
        query = query.where(Survey.asked_at < until)
    rows = session.execute(query).all()
    closers = _closer(session, [case.id for _, case in rows]) if by == "operator" else {}
    groups: dict[str, list[Survey]] = defaultdict(list)
    for survey, case in rows:
        if by == "month":
            asked = survey.asked_at
            assert asked is not None
            key = asked.astimezone(zone).strftime("%Y-%m") if zone else asked.strftime("%Y-%m")
        elif by == "operator":
            key = closers.get(case.id, "")
        elif by == "all":
            key = "all"
        else:
            key = str(getattr(case, by))
        groups[key].append(survey)
    result = []
    for key in sorted(groups):
        items = groups[key]
        ratings = [s.rating for s in items if s.rating is not None]
        result.append(
            Score(
                key=key,
                asked=len(items),
                answered=len(ratings),
                csat=round(sum(r >= 4 for r in ratings) / len(ratings), 4) if ratings else None,
                mean=round(sum(ratings) / len(ratings), 2) if ratings else None,
                response_rate=round(len(ratings) / len(items), 4) if items else None,
                low_scores=sum(1 for s in items if s.low_score),
            )
        )
    return result


def follow_ups(session: Session, departments: Collection[str] | None) -> list[tuple[Survey, Case]]:
    """Low scores not yet followed up, oldest first: the supervisors' list."""
    query = (
        select(Survey, Case)
        .join(Case, Case.id == Survey.case_id)
        .where(Survey.low_score.is_(True), Survey.followed_up_at.is_(None))
        .order_by(Survey.answered_at, Survey.id)
    )
    if departments is not None:
        query = query.where(Case.department.in_(list(departments)))
    return [(survey, case) for survey, case in session.execute(query).all()]
