"""The simulator: a newcomer texts the gateway as a citizen and reads the replies."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from casestore.config import Config
from gateway.app import create_app
from gateway.settings import load_settings
from tests.conftest import app_env
from tests.helpers import Db, counts


def test_text_as_citizen_and_see_receipt(sim: TestClient, db_url: str) -> None:
    page = sim.get("/simulator")
    assert page.status_code == 200 and 'name="phone"' in page.text
    response = sim.post(
        "/simulator", data={"phone": "+54 9 11 5555-0007", "text": "Se inundo mi casa"}
    )
    assert response.status_code == 200  # followed the redirect to the conversation
    assert "Se inundo mi casa" in response.text
    assert re.search(r"seguimiento: \d{4} \d{4} \d{2}", response.text)
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.category, case.channel) == ("emergencia-climatica", "sms")
        assert db.contacts()[0].phone == "+5491155550007"
    again = sim.post(
        "/simulator", data={"phone": "+5491155550007", "text": "ESTADO " + case.tracking_number}
    )
    assert "Estado: recibido" in again.text


def test_bad_phone_is_refused_and_nothing_written(sim: TestClient, db_url: str) -> None:
    before = counts(db_url)
    response = sim.post("/simulator", data={"phone": "abc", "text": "hola"})
    assert response.status_code == 400
    assert "no válido" in response.text
    assert counts(db_url) == before


def test_simulator_is_off_with_a_real_provider(db_url: str, redis_url: str, config: Config) -> None:
    settings = load_settings(app_env(db_url, redis_url, VENTANILLA_SMS_PROVIDER="twilio"))
    with TestClient(create_app(settings, config)) as test_client:
        assert test_client.get("/simulator").status_code == 404
        assert (
            test_client.post(
                "/simulator", data={"phone": "+5491155550007", "text": "x"}
            ).status_code
            == 404
        )
