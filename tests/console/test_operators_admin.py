"""The console's operators page: admins manage accounts; supervisors and operators get 403;
every change is audited and confirmed; a bad form changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.db import make_engine
from casestore.models import AuditEvent
from casestore.operators import create_token
from tests.console.conftest import PASSWORD, log_in
from tests.helpers import counts
from tests.test_cli import operator

NEW_PASSWORD = "girasoles-de-mayo-7"


def audited(db_url: str, action: str) -> list[tuple[str, str]]:
    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            rows = s.execute(
                select(AuditEvent.actor, AuditEvent.target_id).where(AuditEvent.action == action)
            )
            return [(actor, target) for actor, target in rows]
    finally:
        engine.dispose()


@pytest.fixture
def admin(client: TestClient, add_operator: Callable[..., str]) -> str:
    """Log the admin "root" in; returns the CSRF token."""
    add_operator("root", role="admin", departments=())
    return log_in(client, "root")


def test_operators_and_supervisors_get_403(
    client: TestClient, db_url: str, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    add_operator("gema", role="supervisor", departments=("GEN",))
    for user in ("ana", "gema"):
        csrf = log_in(client, user)
        page = client.get("/console/operators")
        assert page.status_code == 403
        assert "No tiene permiso" in page.text
        assert "Operadores" not in client.get("/console").text  # no link to it either
        posted = client.post(
            "/console/operators/ana", data={"csrf_token": csrf, "action": "disable"}
        )
        assert posted.status_code == 403
        client.post("/console/logout", data={"csrf_token": csrf})
    ana = operator(db_url, "ana")
    assert ana is not None and ana.active


def test_the_list_shows_names_not_codes(
    client: TestClient, admin: str, add_operator: Callable[..., str]
) -> None:
    add_operator("gema", role="supervisor", departments=("GEN", "NAF"))
    page = client.get("/console/operators")
    assert page.status_code == 200
    assert 'href="/console/operators"' in page.text  # in the navigation
    row = re.search(r"<tr>\s*<td><a href=\"/console/operators/gema\">.*?</tr>", page.text, re.S)
    assert row is not None
    assert "Supervisor/a" in row.group(0)
    assert "Mujeres, Géneros y Diversidad" in row.group(0)
    assert "Niñez, Adolescencia y Familia" in row.group(0)
    assert "GEN" not in row.group(0) and "supervisor<" not in row.group(0)
    assert "Administrador/a" in page.text


def test_add_an_operator_with_a_password(
    client: TestClient, db_url: str, admin: str, config: Config
) -> None:
    response = client.post(
        "/console/operators",
        data={
            "csrf_token": admin,
            "username": "lucia",
            "name": "Lucía Gómez",
            "role": "supervisor",
            "department": ["ALIM", "HAB"],
            "phone": "011 15 5555-0042",
            "password": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/operators/lucia?hecho=added"
    shown = client.get(response.headers["location"])
    assert "Operador/a lucia creado/a." in shown.text
    lucia = operator(db_url, "lucia")
    assert lucia is not None
    assert (lucia.name, lucia.role, lucia.department_codes, lucia.phone) == (
        "Lucía Gómez", "supervisor", {"ALIM", "HAB"}, "+5491155550042",
    )  # fmt: skip
    assert lucia.password_hash is not None
    assert PasswordHasher().verify(lucia.password_hash, NEW_PASSWORD)
    assert ("root", "lucia") in audited(db_url, "operator.add")
    # and lucia can log in with it
    client.post("/console/logout", data={"csrf_token": admin})
    log_in(client, "lucia", NEW_PASSWORD)


@pytest.mark.parametrize(
    ("password", "repeated", "says"),
    [
        ("corta-1", "corta-1", "al menos 10 caracteres"),
        ("contraseña", "contraseña", "demasiado común"),
        ("Ventanilla2025", "Ventanilla2025", "demasiado común"),
        ("lucia.gomez", "lucia.gomez", "igual al nombre de usuario"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "no coinciden"),
    ],
)
def test_add_refuses_a_weak_password_and_changes_nothing(
    client: TestClient, db_url: str, admin: str, password: str, repeated: str, says: str
) -> None:
    before = counts(db_url)
    response = client.post(
        "/console/operators",
        data={
            "csrf_token": admin,
            "username": "lucia.gomez",
            "role": "operator",
            "department": "ALIM",
            "password": password,
            "password2": repeated,
        },
    )
    assert response.status_code == 400
    assert says in response.text
    assert 'value="lucia.gomez"' in response.text  # the form keeps what was typed
    assert not re.search(r'type="password"[^>]*value=', response.text)  # never sent back
    after = counts(db_url)
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    assert operator(db_url, "lucia.gomez") is None
    assert audited(db_url, "operator.add") == []


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"username": "ana", "role": "operator"}, "Ya existe"),
        ({"username": "con espacio", "role": "operator"}, "sin espacios"),
        ({"username": "eva", "role": "jefa"}, "Elija un rol"),
        ({"username": "eva", "role": "operator", "department": "XYZ"}, "Elija áreas"),
        ({"username": "eva", "role": "operator", "phone": "12"}, "teléfono no es válido"),
    ],
)
def test_add_refuses_bad_input_with_400(
    client: TestClient,
    db_url: str,
    admin: str,
    add_operator: Callable[..., str],
    fields: dict[str, str],
    says: str,
) -> None:
    add_operator("ana")
    before = counts(db_url)
    data = {"csrf_token": admin, "password": NEW_PASSWORD, "password2": NEW_PASSWORD, **fields}
    response = client.post("/console/operators", data=data)
    assert response.status_code == 400
    assert says in response.text
    assert counts(db_url)["operators"] == before["operators"]
    assert counts(db_url)["operator_departments"] == before["operator_departments"]


def test_edit_role_departments_name_and_phone(
    client: TestClient, db_url: str, admin: str, add_operator: Callable[..., str]
) -> None:
    add_operator("ana", departments=("ALIM",))
    response = client.post(
        "/console/operators/ana",
        data={
            "csrf_token": admin,
            "action": "edit",
            "role": "supervisor",
            "department": ["HAB", "NAF"],
            "name": "Ana Paz",
            "phone": "+54 9 11 5555 0043",
        },
    )
    assert response.status_code == 200  # after the redirect
    assert "Cambios guardados para ana." in response.text
    ana = operator(db_url, "ana")
    assert ana is not None
    assert (ana.role, ana.department_codes, ana.name, ana.phone) == (
        "supervisor", {"HAB", "NAF"}, "Ana Paz", "+5491155550043",
    )  # fmt: skip
    assert audited(db_url, "operator.edit") == [("root", "ana")]

    bad = client.post(
        "/console/operators/ana",
        data={"csrf_token": admin, "action": "edit", "role": "operator", "department": "XYZ"},
    )
    assert bad.status_code == 400
    ana = operator(db_url, "ana")
    assert ana is not None and ana.role == "supervisor"  # nothing of the bad form was kept
    assert ana.department_codes == {"HAB", "NAF"}


def test_reset_password_ends_sessions_and_the_new_one_works(
    client: TestClient, db_url: str, admin: str, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    weak = client.post(
        "/console/operators/ana",
        data={"csrf_token": admin, "action": "password", "password": "123456789",
              "password2": "123456789"},
    )  # fmt: skip
    assert weak.status_code == 400
    assert "al menos 10 caracteres" in weak.text
    done = client.post(
        "/console/operators/ana",
        data={"csrf_token": admin, "action": "password", "password": NEW_PASSWORD,
              "password2": NEW_PASSWORD},
    )  # fmt: skip
    assert done.status_code == 200
    assert "Contraseña de ana cambiada" in done.text
    ana = operator(db_url, "ana")
    assert ana is not None and ana.password_hash is not None
    assert PasswordHasher().verify(ana.password_hash, NEW_PASSWORD)
    assert audited(db_url, "operator.passwd") == [("root", "ana")]
    assert NEW_PASSWORD not in str(audited(db_url, "operator.passwd"))


def test_disable_locks_out_an_open_session_and_enable_lets_in(
    client: TestClient, db_url: str, admin: str, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    # A second browser on the same running app (its lifespan already ran with `client`).
    ana_client = TestClient(client.app, base_url=str(client.base_url))
    if True:
        log_in(ana_client, "ana")
        assert ana_client.get("/console", follow_redirects=False).status_code == 200
        disabled = client.post(
            "/console/operators/ana", data={"csrf_token": admin, "action": "disable"}
        )
        assert disabled.status_code == 200
        assert "ana desactivado/a" in disabled.text
        assert ana_client.get("/console", follow_redirects=False).status_code == 303
        refused = ana_client.post("/console/login", data={"username": "ana", "password": PASSWORD})
        assert refused.status_code == 401

        enabled = client.post(
            "/console/operators/ana", data={"csrf_token": admin, "action": "enable"}
        )
        assert "ana activado/a de nuevo" in enabled.text
        log_in(ana_client, "ana")
    assert audited(db_url, "operator.disable") == [("root", "ana")]
    assert audited(db_url, "operator.enable") == [("root", "ana")]


def test_an_admin_cannot_lock_themselves_out(client: TestClient, db_url: str, admin: str) -> None:
    for data in ({"action": "disable"}, {"action": "edit", "role": "operator"}):
        response = client.post("/console/operators/root", data={"csrf_token": admin, **data})
        assert response.status_code == 400
        assert "su propia cuenta" in response.text
    root = operator(db_url, "root")
    assert root is not None and root.active and root.role == "admin"


def test_tokens_are_listed_and_revoked(
    client: TestClient, db_url: str, admin: str, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    add_operator("beto")
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        secret = create_token(s, "ana")
        create_token(s, "beto")
    engine.dispose()
    page = client.get("/console/operators/ana")
    assert secret not in page.text and "vt_" not in page.text
    ids = re.findall(r'name="token" value="(\d+)"', page.text)
    assert len(ids) == 1
    beto_ids = re.findall(r'name="token" value="(\d+)"', client.get("/console/operators/beto").text)

    # Another operator's token id on ana's page: refused, nothing revoked.
    wrong = client.post(
        "/console/operators/ana",
        data={"csrf_token": admin, "action": "revoke", "token": beto_ids[0]},
    )
    assert wrong.status_code == 400
    assert "ya no está activo" in wrong.text
    revoked = client.post(
        "/console/operators/ana", data={"csrf_token": admin, "action": "revoke", "token": ids[0]}
    )
    assert revoked.status_code == 200
    assert f"Token {ids[0]} de ana revocado." in revoked.text
    assert "No tiene tokens activos." in revoked.text
    assert (
        client.get("/api/v1/cases", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 401
    )
    assert audited(db_url, "token.revoke") == [("root", "ana")]


def test_changes_need_the_csrf_token(
    client: TestClient, db_url: str, admin: str, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    response = client.post("/console/operators/ana", data={"action": "disable"})
    assert response.status_code == 403
    ana = operator(db_url, "ana")
    assert ana is not None and ana.active


def test_unknown_operator_and_unknown_action(client: TestClient, admin: str) -> None:
    assert client.get("/console/operators/nadie").status_code == 404
    missing = client.post(
        "/console/operators/nadie", data={"csrf_token": admin, "action": "disable"}
    )
    assert missing.status_code == 404
    odd = client.post("/console/operators/root", data={"csrf_token": admin, "action": "borrar"})
    assert odd.status_code == 400
