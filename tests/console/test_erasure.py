"""Erasure leaves nothing of the person: every table, Redis, the API and the provider's
recordings (issue 8, defect 5)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import JSON, String, Text, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore import calls, menu_actions
from casestore.config import Config
from casestore.models import AuditEvent, Base, Case
from gateway.app import create_app
from gateway.menu_store import SessionStore
from gateway.settings import load_settings
from ivr.machine import State
from tests.conftest import PUBLIC_URL, app_env
from tests.console.conftest import log_in
from tests.console.test_people import open_case, record_person
from tests.fakeprovider import FakeProvider
from tests.helpers import Db, admin_token
from tests.settings import REDIS_PREFIX

PHONE = "+5491155550901"
DNI = "27333444"
NAME = "Rosa Perez"
ADDRESS = "Calle Falsa 123"
AT_RECORDING = "https://voice.africastalking.com/recordings/5d1c0b2a.mp3"


@pytest.fixture
def erasing_client(
    db_url: str, redis_url: str, config: Config, fake_provider: FakeProvider
) -> Iterator[TestClient]:
    """The app with Twilio's REST API pointed at the fake provider."""
    settings = load_settings(app_env(db_url, redis_url, TWILIO_API_BASE_URL=fake_provider.url))
    with TestClient(create_app(settings, config), base_url=PUBLIC_URL) as client:
        yield client


def leftovers(db_url: str, needles: tuple[str, ...]) -> list[str]:
    """Every text (and JSON) value of every table that still contains one of `needles`."""
    found = []
    with Db(db_url) as db, db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in conn.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    text = value if isinstance(value, str) else json.dumps(value)
                    found += [f"{table.name}.{column.name}: {n}" for n in needles if n in text]
    return found


def _seed_voice_and_calls(
    db_url: str, config: Config, call_sid: str, recording_url: str, case_number: str
) -> None:
    """A voice request with a Twilio recording, one through Africa's Talking, a missed call
    waiting to be called back and a call-back request, all from the same phone."""
    now = datetime.now(UTC)
    with Db(db_url) as db, Session(db.engine) as session, session.begin():
        for provider, ref, url in (
            ("twilio", f"{call_sid}:3", recording_url),
            ("africastalking", "ATVId_5d1c0b2a:3", AT_RECORDING),
        ):
            request = menu_actions.KeypadRequest(
                phone=PHONE,
                channel="voice",
                provider=provider,
                provider_ref=ref,
                category="tarjeta-alimentar",
                description="",
                recording_url=url
                or f"https://api.twilio.com/2010-04-01/Accounts/"
                f"{'AC' + '0' * 32}/Recordings/RE{'0' * 32}",
                urgent=False,
                language="es",
                now=now,
            )
            menu_actions.open_case_by_keypad(session, config, request, sms_provider="outbox")
        calls.request_missed_call_callback(
            session,
            phone=PHONE,
            provider="twilio",
            limit_per_day=3,
            timezone=config.timezone,
            now=now,
        )
        case_id = session.scalar(select(Case.id).where(Case.tracking_number == case_number))
        menu_actions.request_callback(
            session,
            phone=PHONE,
            department="ALIM",
            channel="voice",
            reason="requested",
            language="es",
            now=now,
            case_id=case_id,
        )


def test_erasing_a_person_leaves_nothing_of_them(
    erasing_client: TestClient,
    db_url: str,
    redis_url: str,
    config: Config,
    fake_provider: FakeProvider,
    add_operator: Callable[..., str],
) -> None:
    client = erasing_client
    number = open_case(client, f"No me llega la tarjeta alimentar, soy {NAME}", PHONE)
    add_operator("sofia", role="supervisor", departments=("ALIM",))
    csrf = log_in(client, "sofia")
    record_person(client, csrf, number, NAME, DNI)
    said = f"{NAME}, DNI {DNI}, vive en {ADDRESS}"
    for data in (
        {"action": "note", "text": f"Llamó {said}"},
        {"action": "status", "status": "in_progress", "note": f"Visita a {said}"},
        {"action": "reply", "text": f"{NAME}: la visitamos en {ADDRESS}"},
    ):
        response = client.post(f"/console/cases/{number}", data={"csrf_token": csrf, **data})
        assert response.status_code == 200, response.text
    # Twilio keeps the recording the webhook named, and one more of the same call.
    call_sid = "CA" + "5d1c" * 8
    recorded = fake_provider.add_recording(call_sid)
    extra = fake_provider.add_recording(call_sid)
    kept = fake_provider.add_recording("CA" + "9" * 32)  # someone else's call
    _seed_voice_and_calls(db_url, config, call_sid, recorded.url, number)
    # Redis: a request the citizen may resume from the menu, and the simulator's call.
    connection = redis.Redis.from_url(redis_url)
    SessionStore(connection, 600, 600).keep_resumable(
        PHONE, State(channel="voice", language="es", node="describe", description=said)
    )
    connection.set(f"{REDIS_PREFIX}:sim:call:{PHONE}", "CA" + "1" * 32)
    party = f"{REDIS_PREFIX}:atvoice:party:ATVId_5d1c0b2a"  # an AT call's citizen, by session
    connection.set(party, json.dumps([PHONE, "es"]))
    unrelated = f"{REDIS_PREFIX}:menu:r:+5491155550999"
    connection.set(unrelated, "{}")
    # An integrator looked the phone up: the audit trail kept the filter.
    token = admin_token(db_url, config.departments)
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/cases", params={"phone": PHONE}, headers=headers).json()
    assert len(listed["items"]) == 3
    needles = (PHONE, PHONE.lstrip("+"), DNI, NAME, ADDRESS, "Rosa")
    assert leftovers(db_url, needles)  # the scan finds what is there

    erased = client.post(
        "/console/privacy",
        data={
            "csrf_token": csrf,
            "phone": PHONE,
            "national_id": DNI,
            "action": "erase",
            "confirm": "yes",
        },
    )
    assert erased.status_code == 200, erased.text
    assert "Datos borrados: 3 pedidos" in erased.text and "2 grabaciones borradas" in erased.text
    assert AT_RECORDING in erased.text  # no deletion API: listed for manual deletion
    assert leftovers(db_url, needles) == []
    # Twilio got the DELETEs (the named recording and the other one of the call), no more.
    assert sorted(fake_provider.deleted_recordings) == sorted([recorded.sid, extra.sid])
    assert [r.sid for r in fake_provider.recordings] == [kept.sid]
    deletes = [r for r in fake_provider.requests if r.method == "DELETE"]
    assert {r.path.rsplit("/", 1)[1] for r in deletes} == {
        f"{recorded.sid}.json",
        f"{extra.sid}.json",
    }
    # Redis keys named by the phone are gone; others stay.
    assert connection.keys(f"*{PHONE}*") == [] and connection.keys("*5491155550901*") == []
    assert not connection.exists(party) and connection.exists(unrelated)
    # The API shows the cases without the phone.
    listed = client.get("/api/v1/cases", headers=headers).json()
    assert len(listed["items"]) == 3
    assert all(item["citizen"]["phone"] is None for item in listed["items"])
    assert PHONE not in json.dumps(listed) and DNI not in json.dumps(listed)
    with Db(db_url) as db, Session(db.engine) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action.like("privacy.%"))).all()
    assert {r.action for r in rows} == {"privacy.erase", "privacy.erase_recordings"}
    assert all(re.fullmatch(r"person:[0-9a-f]{16}", r.target_id) for r in rows)
    manual = next(r for r in rows if r.action == "privacy.erase_recordings").detail
    assert manual == {"deleted": 2, "manual": [AT_RECORDING], "redis_cleared": True}
    connection.close()


def test_erasing_by_national_id_takes_the_phone_from_the_api(
    client: TestClient, db_url: str, config: Config, add_operator: Callable[..., str]
) -> None:
    number = open_case(client, "No me llega la tarjeta alimentar", PHONE)
    add_operator("sofia", role="supervisor", departments=("ALIM",))
    csrf = log_in(client, "sofia")
    record_person(client, csrf, number, NAME, DNI)
    client.post(
        f"/console/cases/{number}",
        data={"csrf_token": csrf, "action": "status", "status": "in_progress",
              "note": f"{NAME} DNI {DNI} en {ADDRESS}"},
    )  # fmt: skip
    erased = client.post(
        "/console/privacy",
        data={"csrf_token": csrf, "national_id": DNI, "action": "erase", "confirm": "yes"},
    )
    assert erased.status_code == 200
    token = admin_token(db_url, config.departments)
    body = client.get(
        f"/api/v1/cases/{number}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert body["citizen"] == {"phone": None, "name": None, "national_id": None}
    text = json.dumps(body)
    assert PHONE not in text and NAME not in text and DNI not in text and ADDRESS not in text
    assert leftovers(db_url, (PHONE, DNI, NAME, ADDRESS)) == []
