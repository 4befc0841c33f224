"""One definition of an open case: the overdue badge and the overdue filter agree."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.models import Case, CaseStatus, utcnow
from casestore.states import OPEN_STATUSES
from casestore.status import is_overdue
from tests.console.conftest import log_in
from tests.helpers import Db, post_twilio, twilio_form


def test_open_statuses_are_one_set_of_real_statuses() -> None:
    assert set(CaseStatus) >= OPEN_STATUSES
    past = utcnow() - timedelta(hours=1)
    assert [s.value for s in CaseStatus if is_overdue(past, s.value, utcnow())] == sorted(
        OPEN_STATUSES, key=[s.value for s in CaseStatus].index
    )


def test_waiting_citizen_past_due_is_badged_and_filtered(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    post_twilio(client, twilio_form("Necesito mercaderia", sender="+5491155550321"))
    with Db(db_url) as db, Session(db.engine) as session, session.begin():
        (case,) = db.cases()
        session.execute(
            update(Case)
            .where(Case.id == case.id)
            .values(status="waiting_citizen", due_at=utcnow() - timedelta(hours=2))
        )
    log_in(client, add_operator("ana", departments=("ALIM",)))

    def row(page: str) -> str:
        rows = [r for r in re.findall(r"<tr>.*?</tr>", page, re.S) if "/console/cases/" in r]
        assert len(rows) == 1, page
        return rows[0]

    assert "VENCIDO" in row(client.get("/console").text)
    assert "VENCIDO" in row(client.get("/console?overdue=1").text)
    assert "VENCIDO" in client.get(f"/console/cases/{case.tracking_number}").text


def test_a_console_note_over_the_cap_is_400_and_writes_nothing(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    from casestore.cases import NOTE_MAX

    post_twilio(client, twilio_form("Necesito mercaderia", sender="+5491155550322"))
    with Db(db_url) as db:
        (case,) = db.cases()
    csrf = log_in(client, add_operator("ana", departments=("ALIM",)))
    page = client.get(f"/console/cases/{case.tracking_number}").text
    assert f'maxlength="{NOTE_MAX}"' in page
    for data in (
        {"action": "note", "text": "x" * (NOTE_MAX + 1)},
        {"action": "status", "status": "in_progress", "note": "x" * (NOTE_MAX + 1)},
    ):
        response = client.post(
            f"/console/cases/{case.tracking_number}", data={"csrf_token": csrf, **data}
        )
        assert response.status_code == 400 and f"at most {NOTE_MAX}" in response.text
    with Db(db_url) as db:
        (after,) = db.cases()
        assert after.status == "new"
