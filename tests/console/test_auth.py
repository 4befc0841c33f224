"""Console access: log-in, sessions, CSRF, back-off, departments, audit."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.db import make_engine
from casestore.models import AuditEvent
from tests.console.conftest import log_in
from tests.helpers import post_twilio, twilio_form


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/console", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")


def test_login_shows_only_own_departments(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    post_twilio(client, twilio_form("No me llega la tarjeta alimentar", sender="+5491155550301"))
    post_twilio(client, twilio_form("Necesito chapas para el techo", sender="+5491155550302"))
    add_operator("ana", departments=("ALIM",))
    log_in(client, "ana")
    page = client.get("/console").text
    assert "tarjeta alimentar" in page
    assert "chapas" not in page
    engine = make_engine(db_url)
    with Session(engine) as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    engine.dispose()
    assert {"console.login", "console.case_list"} <= actions


def test_case_of_other_department_is_not_shown(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    reply = post_twilio(client, twilio_form("Necesito chapas", sender="+5491155550303")).text
    import re

    number = re.search(r"(\d{4} \d{4} \d{2})", reply).group(1).replace(" ", "")  # type: ignore[union-attr]
    add_operator("ana", departments=("ALIM",))
    log_in(client, "ana")
    response = client.get(f"/console/cases/{number}")
    assert response.status_code == 404
    assert "chapas" not in response.text


def test_wrong_password_then_lockout(client: TestClient, add_operator: Callable[..., str]) -> None:
    add_operator("beto")
    for _ in range(5):
        response = client.post("/console/login", data={"username": "beto", "password": "mala"})
        assert response.status_code == 401
        assert "incorrectos" in response.text
    locked = client.post(
        "/console/login", data={"username": "beto", "password": "clave-de-prueba-1"}
    )
    assert locked.status_code == 429
    assert "Demasiados intentos" in locked.text


def test_post_without_csrf_token_is_refused(
    client: TestClient, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    token = log_in(client, "ana")
    assert client.post("/console/logout", data={}).status_code == 403
    out = client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_no_open_redirect_after_login(client: TestClient, add_operator: Callable[..., str]) -> None:
    add_operator("ana")
    response = client.post(
        "/console/login?next=https://evil.example/x",
        data={"username": "ana", "password": "clave-de-prueba-1"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console"


def test_case_list_filters(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    post_twilio(client, twilio_form("No me llega la tarjeta alimentar", sender="+5491155550311"))
    wa = twilio_form("Necesito mercaderia para el comedor", sender="whatsapp:+5491155550312")
    post_twilio(client, wa)
    add_operator("ana", departments=("ALIM",))
    log_in(client, "ana")
    by_channel = client.get("/console?channel=whatsapp").text
    assert "mercaderia" in by_channel and "tarjeta alimentar" not in by_channel
    by_category = client.get("/console?category=tarjeta-alimentar").text
    assert "tarjeta alimentar" in by_category and "mercaderia" not in by_category
    assert "No hay pedidos" in client.get("/console?from=2000-01-01&to=2000-01-02").text
    assert "No hay pedidos" in client.get("/console?overdue=1").text  # none due yet
    assert client.get("/console?from=ayer").status_code == 400


def test_scores_page(client: TestClient, add_operator: Callable[..., str]) -> None:
    add_operator("sofia", role="supervisor", departments=("ALIM",))
    log_in(client, "sofia")
    page = client.get("/console/scores?by=channel")
    assert page.status_code == 200 and "CSAT" in page.text
    assert client.get("/console/scores?by=planet").status_code == 400
