"""A citizen's data only to those allowed: the privacy page, people, phones and follow-ups are
scoped by the viewer's departments (issue 8, defect 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.db import make_engine
from casestore.models import AuditEvent, Case, Contact, Survey
from casestore.operators import create_token
from tests.console.conftest import log_in
from tests.console.test_people import open_case, record_person
from tests.helpers import Db, counts

ALIM_PHONE = "+5491155550801"  # the ALIM citizen
HAB_PHONE = "+5491155550802"  # the same person's other phone, on a housing request
DNI = "27333444"


def _rows(db_url: str) -> dict[str, object]:
    """Everything erasure would change, to prove a refusal changed nothing."""
    with Db(db_url) as db:
        return {
            "cases": [(c.description, c.citizen_name, c.national_id) for c in db.cases()],
            "contacts": [c.phone for c in db.contacts()],
            "messages": [i.text for i in db.interactions()],
        }


def test_hab_supervisor_neither_exports_nor_erases_an_alim_citizen(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    number = open_case(client, "No me llega la tarjeta alimentar, soy Rosa", ALIM_PHONE)
    add_operator("ana", departments=("ALIM",))
    record_person(client, log_in(client, "ana"), number, "Rosa Perez", DNI)
    add_operator("hugo", role="supervisor", departments=("HAB",))
    csrf = log_in(client, "hugo")
    assert client.get(f"/console/cases/{number}").status_code == 404  # as the case page says
    for field, value in (("phone", ALIM_PHONE), ("national_id", DNI)):
        exported = client.post(
            "/console/privacy", data={"csrf_token": csrf, field: value, "action": "export"}
        )
        assert exported.status_code == 200
        data = json.loads(exported.text)
        assert data["contacts"] == [] and data["cases"] == [] and data["messages"] == []
        assert ALIM_PHONE not in exported.text and "Rosa" not in exported.text
        found = client.post(
            "/console/privacy", data={"csrf_token": csrf, field: value, "action": "find"}
        )
        assert "No hay datos de esta persona en sus áreas" in found.text
    before, tables = _rows(db_url), counts(db_url)
    for field, value in (("phone", ALIM_PHONE), ("national_id", DNI)):
        refused = client.post(
            "/console/privacy",
            data={"csrf_token": csrf, field: value, "action": "erase", "confirm": "yes"},
        )
        assert refused.status_code == 403
        assert "solo un administrador" in refused.text and "No se borró nada" in refused.text
    unknown = client.post(
        "/console/privacy",
        data={"csrf_token": csrf, "national_id": "11222333", "action": "erase", "confirm": "yes"},
    )
    assert unknown.status_code == 404 and "No hay datos de esta persona" in unknown.text
    assert _rows(db_url) == before
    tables.pop("audit_events")
    after = counts(db_url)
    after.pop("audit_events")
    assert after == tables


def test_a_person_with_cases_in_two_departments_is_erased_only_by_an_admin(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    alim = open_case(client, "No me llega la tarjeta alimentar", ALIM_PHONE)
    hab = open_case(client, "Necesito chapas para el techo", HAB_PHONE)
    add_operator("ana", departments=("ALIM",))
    record_person(client, log_in(client, "ana"), alim, "Rosa Perez", DNI)
    add_operator("hugo", role="supervisor", departments=("HAB",))
    csrf = log_in(client, "hugo")
    record_person(client, csrf, hab, "Rosa Perez", DNI)
    exported = json.loads(
        client.post(
            "/console/privacy", data={"csrf_token": csrf, "national_id": DNI, "action": "export"}
        ).text
    )
    assert [c["tracking_number"] for c in exported["cases"]] == [hab]
    assert [c["phone"] for c in exported["contacts"]] == [HAB_PHONE]
    before = _rows(db_url)
    refused = client.post(
        "/console/privacy",
        data={"csrf_token": csrf, "national_id": DNI, "action": "erase", "confirm": "yes"},
    )
    assert refused.status_code == 403 and _rows(db_url) == before
    add_operator("root", role="admin", departments=())
    csrf = log_in(client, "root")
    erased = client.post(
        "/console/privacy",
        data={"csrf_token": csrf, "national_id": DNI, "action": "erase", "confirm": "yes"},
    )
    assert erased.status_code == 200 and "Datos borrados" in erased.text
    with Db(db_url) as db:
        assert all(c.national_id is None and c.citizen_name is None for c in db.cases())
        assert all(c.phone.startswith("erased:") for c in db.contacts())


def test_case_page_lists_only_the_phones_and_names_of_the_viewers_departments(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    alim = open_case(client, "No me llega la tarjeta alimentar", ALIM_PHONE)
    hab = open_case(client, "Necesito chapas para el techo", HAB_PHONE)
    add_operator("ana", departments=("ALIM",))
    record_person(client, log_in(client, "ana"), alim, "Rosa Perez", DNI)
    add_operator("hugo", role="supervisor", departments=("HAB",))
    csrf = log_in(client, "hugo")
    # The DNI is linked in HAB without a name: ALIM's name is not copied over.
    page = record_person(client, csrf, hab, "", DNI)
    assert HAB_PHONE in page
    assert ALIM_PHONE not in page and "Rosa" not in page
    with Db(db_url) as db:
        names = {c.tracking_number: c.citizen_name for c in db.cases()}
    assert names == {alim: "Rosa Perez", hab: None}
    # A name given in HAB stays in HAB: ALIM's page keeps its own.
    record_person(client, csrf, hab, "R. P. (vecina)", DNI)
    log_in(client, "ana")
    alim_page = client.get(f"/console/cases/{alim}").text
    assert "Rosa Perez" in alim_page and "vecina" not in alim_page
    assert ALIM_PHONE in alim_page and HAB_PHONE not in alim_page
    with Db(db_url) as db:
        names = {c.tracking_number: c.citizen_name for c in db.cases()}
    assert names == {alim: "Rosa Perez", hab: "R. P. (vecina)"}


def test_people_sharing_a_phone_are_listed_only_within_the_viewers_departments(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    alim = open_case(client, "No me llega la tarjeta alimentar", ALIM_PHONE)
    with Db(db_url) as db, db.engine.begin() as conn:  # the conversation window is over
        conn.execute(update(Contact).values(conversation_case_id=None, conversation_at=None))
    hab = open_case(client, "Necesito chapas para el techo", ALIM_PHONE)
    add_operator("ana", departments=("ALIM",))
    record_person(client, log_in(client, "ana"), alim, "Rosa Perez", DNI)
    add_operator("hugo", role="supervisor", departments=("HAB",))
    csrf = log_in(client, "hugo")
    page = record_person(client, csrf, hab, "Juan Diaz", "30999888")
    assert "Juan Diaz" in page
    assert "Rosa Perez" not in page and DNI not in page


def _low_score(db_url: str, number: str) -> None:
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        case = session.scalars(select(Case).where(Case.tracking_number == number)).one()
        session.add(
            Survey(
                case_id=case.id,
                channel="sms",
                language="es",
                status="done",
                due_at=now,
                answered_at=now,
                rating=1,
                low_score=True,
                created_at=now,
                updated_at=now,
            )
        )
    engine.dispose()


def _token(db_url: str, username: str) -> str:
    engine = make_engine(db_url)
    with Session(engine) as session, session.begin():
        value = create_token(session, username)
    engine.dispose()
    return value


def test_follow_ups_are_for_supervisors_and_admins_of_their_departments(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    alim = open_case(client, "No me llega la tarjeta alimentar", ALIM_PHONE)
    hab = open_case(client, "Necesito chapas para el techo", HAB_PHONE)
    _low_score(db_url, alim)
    _low_score(db_url, hab)
    add_operator("ana", departments=("ALIM", "HAB"))
    add_operator("hugo", role="supervisor", departments=("HAB",))
    add_operator("root", role="admin", departments=())

    def follow_ups(username: str) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {_token(db_url, username)}"}
        response = client.get("/api/v1/surveys/follow-ups", headers=headers)
        return response.status_code, response.json()

    status, body = follow_ups("ana")
    assert status == 403 and "supervisors" in str(body)
    status, body = follow_ups("hugo")
    assert status == 200
    assert [i["tracking_number"] for i in body["items"]] == [hab]  # type: ignore[index]
    status, body = follow_ups("root")
    assert status == 200
    assert {i["tracking_number"] for i in body["items"]} == {alim, hab}  # type: ignore[index]


def test_privacy_audit_names_no_one(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    open_case(client, "No me llega la tarjeta alimentar", ALIM_PHONE)
    add_operator("sofia", role="supervisor", departments=("ALIM",))
    csrf = log_in(client, "sofia")
    for action in ("find", "export"):
        client.post(
            "/console/privacy", data={"csrf_token": csrf, "phone": ALIM_PHONE, "action": action}
        )
    client.post("/console/privacy", data={"csrf_token": csrf, "national_id": DNI, "action": "find"})
    with Db(db_url) as db, Session(db.engine) as session:
        targets = session.scalars(
            select(AuditEvent.target_id).where(AuditEvent.action.like("privacy.%"))
        ).all()
    assert len(targets) == 3
    assert all(t.startswith("person:") and ALIM_PHONE not in t and DNI not in t for t in targets)
