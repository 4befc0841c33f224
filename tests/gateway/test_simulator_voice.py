"""The simulator's voice mode: a keypad walk through the IVR, the same menu and actions."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from tests.helpers import Db


def press(sim: TestClient, page: str, value: str) -> str:
    fields = dict(re.findall(r'name="(call|step|expect|phone)" value="([^"]*)"', page))
    data = {**fields, "action": "key", "input": value}
    response = sim.post("/simulator/voice", data=data)
    assert response.status_code == 200, response.text
    return response.text


def test_call_opens_a_case_with_a_simulated_recording(sim: TestClient, db_url: str) -> None:
    page = sim.post("/simulator/voice", data={"phone": "+5491155550601", "action": "dial"}).text
    assert "Nuevo pedido: presione 1" in page
    page = press(sim, page, "1")
    assert "Elija el tema" in page
    food = re.search(r"<li>Tarjeta Alimentar: presione (\d+)</li>", page)
    assert food, page
    page = press(sim, page, food.group(1))
    assert "Su mensaje queda grabado" in page
    page = press(sim, page, "No me llega la tarjeta")
    assert "Su numero de seguimiento es" in page
    with Db(db_url) as db:
        (case,) = db.cases()
        assert (case.channel, case.category) == ("voice", "tarjeta-alimentar")
        assert " ".join(case.tracking_number) in page
        inbound = [i for i in db.interactions() if i.direction == "in"]
        assert inbound[0].media_urls and inbound[0].media_urls[0].startswith("simulator://")
        assert [m.kind for m in db.outbox()] == ["receipt"]  # the SMS copy


def test_withheld_caller_gets_the_menu_and_invalid_keys_end_politely(sim: TestClient) -> None:
    page = sim.post("/simulator/voice", data={"phone": "", "action": "dial"}).text
    for _ in range(2):
        page = press(sim, page, "7")
        assert "Opcion no valida" in page
    page = press(sim, page, "7")
    assert "Hasta luego" in page and 'data-ended="yes"' in page
