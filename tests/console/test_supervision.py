"""Supervisor pages: a person's data exported and erased, audit trail, call-backs, availability."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.db import make_engine
from casestore.models import AuditEvent, Operator
from tests.console.conftest import log_in
from tests.helpers import Db, post_twilio, twilio_form

PHONE = "+5491155550501"


def test_export_and_erase_a_persons_data(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    post_twilio(client, twilio_form("No me llega la tarjeta alimentar, soy Marta", sender=PHONE))
    add_operator("sofia", role="supervisor", departments=("ALIM",))
    csrf = log_in(client, "sofia")
    exported = client.post(
        "/console/privacy", data={"csrf_token": csrf, "phone": PHONE, "action": "export"}
    )
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith("attachment")
    data = json.loads(exported.text)
    assert data["contacts"][0]["phone"] == PHONE
    assert "soy Marta" in data["cases"][0]["description"]
    refused = client.post(
        "/console/privacy", data={"csrf_token": csrf, "phone": PHONE, "action": "erase"}
    )
    assert refused.status_code == 400  # erasure needs the confirmation box
    erased = client.post(
        "/console/privacy",
        data={"csrf_token": csrf, "phone": PHONE, "action": "erase", "confirm": "yes"},
    )
    assert erased.status_code == 200 and "Datos borrados" in erased.text
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.description == "[borrado]" and case.status == "new"
        assert all("Marta" not in i.text for i in db.interactions())
        assert db.contacts()[0].phone.startswith("erased:")
    engine = make_engine(db_url)
    with Session(engine) as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    engine.dispose()
    assert {"privacy.export", "privacy.erase"} <= actions


def test_operators_cannot_open_supervisor_pages(
    client: TestClient, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    log_in(client, "ana")
    assert client.get("/console/privacy").status_code == 403


def test_supervisor_reads_a_case_audit_trail(
    client: TestClient, add_operator: Callable[..., str]
) -> None:
    reply = post_twilio(client, twilio_form("Tarjeta alimentar", sender=PHONE)).text
    number = re.search(r"(\d{4} \d{4} \d{2})", reply).group(1).replace(" ", "")  # type: ignore[union-attr]
    add_operator("ana")
    log_in(client, "ana")
    client.get(f"/console/cases/{number}")
    add_operator("sofia", role="supervisor", departments=("ALIM",))
    log_in(client, "sofia")
    trail = client.get(f"/console/cases/{number}/audit")
    assert trail.status_code == 200
    assert "ana" in trail.text and "console.case_view" in trail.text


def test_availability_is_saved(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    csrf = log_in(client, "ana")
    response = client.post(
        "/console/availability", data={"csrf_token": csrf, "availability": "available"}
    )
    assert response.status_code in (200, 303)
    engine = make_engine(db_url)
    with Session(engine) as session:
        assert session.scalar(select(Operator.availability).where(Operator.username == "ana")) == (
            "available"
        )
    engine.dispose()
    assert (
        client.post(
            "/console/availability", data={"csrf_token": csrf, "availability": "asleep"}
        ).status_code
        == 400
    )
