"""Inbound SMS over HTTP, on SQLite and PostgreSQL: what a citizen gets back and what is stored."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from casestore.models import Contact, OutboundMessage
from casestore.tracking import find_digit_runs, generate
from sms.segments import segment_info
from tests.helpers import (
    AT_TOKEN,
    Db,
    at_form,
    counts,
    message_sid,
    post_at,
    post_twilio,
    sign,
    twilio_form,
)

TRACKING = re.compile(r"\b(\d{4} \d{4} \d{1,4})\b")


def tracking_in(text: str) -> str:
    match = TRACKING.search(text)
    assert match, f"no tracking number in {text!r}"
    return match.group(1).replace(" ", "")


def reply_of(xml: str) -> str:
    match = re.search(r"<Message>(.*)</Message>", xml, re.S)
    return match.group(1) if match else ""


def test_new_request_opens_case_and_answers_with_tracking_number(
    client: TestClient, db_url: str
) -> None:
    response = post_twilio(client, twilio_form("Hola, no me llega la tarjeta alimentar"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    reply = reply_of(response.text)
    number = tracking_in(reply)
    assert segment_info(reply).encoding == "GSM-7"
    assert segment_info(reply).segments == 1
    assert [run for run in find_digit_runs(reply) if len(run) >= 9] == [number]
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.tracking_number == number
        assert (case.category, case.department, case.status) == ("tarjeta-alimentar", "ALIM", "new")
        assert case.channel == "sms"
        assert case.description == "Hola, no me llega la tarjeta alimentar"
        (contact,) = db.contacts()
        assert contact.phone == "+5491155550001"
        inbound, outbound = db.interactions()
        assert (inbound.direction, inbound.case_id) == ("in", case.id)
        assert (outbound.direction, outbound.text, outbound.reply_to_id) == (
            "out",
            reply,
            inbound.id,
        )
        assert db.outbox() == []  # over Twilio the receipt is the TwiML answer


def test_redelivered_webhook_gets_same_answer_and_creates_nothing(
    client: TestClient, db_url: str
) -> None:
    form = twilio_form("Necesito chapas para el techo")
    first = post_twilio(client, form)
    before = counts(db_url)
    second = post_twilio(client, form)
    assert second.status_code == 200
    assert second.text == first.text
    assert counts(db_url) == before


def test_concurrent_redeliveries_create_one_case(client: TestClient, db_url: str) -> None:
    form = twilio_form("Pido un colchon, se inundo la casa")
    answers: list[str] = []

    def send() -> None:
        answers.append(post_twilio(client, form).text)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(answers) == 8 and len(set(answers)) == 1
    with Db(db_url) as db:
        assert len(db.cases()) == 1
        assert len([i for i in db.interactions() if i.direction == "in"]) == 1


def test_follow_up_within_window_joins_open_case(client: TestClient, db_url: str) -> None:
    first = reply_of(post_twilio(client, twilio_form("No cobre la asignacion")).text)
    second = reply_of(post_twilio(client, twilio_form("Soy madre de 3 chicos")).text)
    assert tracking_in(second) == tracking_in(first)
    assert "sumamos su mensaje" in second
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.description == "No cobre la asignacion"
        assert [i.case_id for i in db.interactions()] == [case.id] * 4


def test_message_after_window_opens_new_case(client: TestClient, db_url: str) -> None:
    post_twilio(client, twilio_form("No cobre la asignacion"))
    with Db(db_url) as db:
        (contact,) = db.contacts()
        with db.engine.begin() as conn:
            conn.execute(
                update(Contact)
                .where(Contact.id == contact.id)
                .values(conversation_at=contact.conversation_at - timedelta(hours=3))
            )
    post_twilio(client, twilio_form("Otra consulta: turno para el DNI"))
    with Db(db_url) as db:
        assert [c.category for c in db.cases()] == ["programas-ingreso", "documentacion"]


def test_baja_inside_a_sentence_is_a_request(client: TestClient, db_url: str) -> None:
    reply = reply_of(post_twilio(client, twilio_form("me dieron de baja la asignación")).text)
    assert "recibimos su pedido" in reply
    with Db(db_url) as db:
        (contact,) = db.contacts()
        assert contact.opted_out_at is None
        assert db.cases()[0].category == "programas-ingreso"


def test_status_answers_status_and_department_only(client: TestClient, db_url: str) -> None:
    owner = "+5491155550001"
    number = tracking_in(
        reply_of(post_twilio(client, twilio_form("Tarjeta alimentar", sender=owner)).text)
    )
    spaced = f"{number[:4]} {number[4:8]} {number[8:]}"
    reply = reply_of(
        post_twilio(client, twilio_form(f"estado {spaced}", sender="+5491155550002")).text
    )
    assert "recibido" in reply and "Asistencia Alimentaria" in reply
    assert "5555" not in reply and "0001" not in reply
    with Db(db_url) as db:
        assert len(db.cases()) == 1  # a status query opens nothing


def test_status_tells_mistyped_from_unknown(client: TestClient, db_url: str) -> None:
    number = generate(10)
    swapped = next(
        number[:i] + number[i + 1] + number[i] + number[i + 2 :]
        for i in range(9)
        if number[i] != number[i + 1]
    )
    mistyped = reply_of(post_twilio(client, twilio_form(f"ESTADO {swapped}")).text)
    unknown = reply_of(post_twilio(client, twilio_form(f"STATUS {number}")).text)
    assert "error de tipeo" in mistyped
    assert "we found no request" in unknown


def test_stop_start_help(client: TestClient, db_url: str) -> None:
    stop = reply_of(post_twilio(client, twilio_form("Baja")).text)
    assert "no le enviaremos mas mensajes" in stop
    with Db(db_url) as db:
        assert db.contacts()[0].opted_out_at is not None
        assert db.cases() == []
    start = reply_of(post_twilio(client, twilio_form(" START ")).text)
    assert "receive our messages again" in start
    with Db(db_url) as db:
        (contact,) = db.contacts()
        assert contact.opted_out_at is None
        assert contact.language == "en"
    help_text = reply_of(post_twilio(client, twilio_form("ayuda")).text)
    assert "ESTADO" in help_text and "911" in help_text


def test_urgent_request_flagged_and_answered_with_emergency_lines(
    client: TestClient, db_url: str
) -> None:
    reply = reply_of(post_twilio(client, twilio_form("Mi pareja me pega, tengo miedo")).text)
    assert "URGENTE" in reply and "144" in reply and "911" in reply
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.urgent and case.priority == "urgent"
        assert (case.category, case.department) == ("violencia-genero", "GEN")


def test_alphanumeric_sender_recorded_never_answered(client: TestClient, db_url: str) -> None:
    response = post_twilio(client, twilio_form("Promo: recarga doble", sender="MOVISTAR"))
    assert response.status_code == 200
    assert "<Message>" not in response.text
    with Db(db_url) as db:
        assert db.cases() == [] and db.contacts() == []
        (interaction,) = db.interactions()
        assert interaction.address == "MOVISTAR"


def test_auto_replies_are_capped_per_hour(client: TestClient, db_url: str) -> None:
    replies = [
        reply_of(post_twilio(client, twilio_form(f"mensaje automatico {i}")).text) for i in range(9)
    ]
    assert all(replies[:6]) and not any(replies[6:])
    with Db(db_url) as db:
        assert len([i for i in db.interactions() if i.direction == "in"]) == 9


def test_status_lookups_are_rate_limited(client: TestClient, db_url: str) -> None:
    number = generate(10)
    replies = [
        reply_of(post_twilio(client, twilio_form(f"ESTADO {number}")).text) for _ in range(8)
    ]
    assert all("no encontramos" in r for r in replies[:5])
    assert "muchas consultas" in replies[5]
    assert replies[6:] == ["", ""]  # then the per-hour auto-reply cap keeps it quiet


def test_whatsapp_message_replies_on_whatsapp(client: TestClient, db_url: str) -> None:
    form = twilio_form("Necesito mercaderia", sender="whatsapp:+5491155550003")
    form["To"] = "whatsapp:+5491155559999"
    response = post_twilio(client, form)
    assert "recibimos su pedido" in response.text
    with Db(db_url) as db:
        (case,) = db.cases()
        assert case.channel == "whatsapp"
        assert db.contacts()[0].phone == "+5491155550003"


def test_mobile_with_and_without_nine_is_one_contact(client: TestClient, db_url: str) -> None:
    post_twilio(client, twilio_form("Consulta por pension", sender="+5491155550004"))
    post_twilio(client, twilio_form("Sigo esperando", sender="+541155550004"))
    with Db(db_url) as db:
        assert len(db.contacts()) == 1
        assert len(db.cases()) == 1


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        (lambda f: f.pop("From"), 400, "missing field: From"),
        (
            lambda f: f.pop("MessageSid") and f.pop("SmsSid") and f.pop("SmsMessageSid"),
            400,
            "MessageSid",
        ),
        (lambda f: f.update(From="+12"), 400, "unparseable phone number"),
    ],
)
def test_malformed_twilio_requests_refused_and_nothing_written(
    client: TestClient, db_url: str, mutate: object, status: int, reason: str
) -> None:
    form = twilio_form("hola")
    mutate(form)  # type: ignore[operator]
    before = counts(db_url)
    response = post_twilio(client, form)
    assert response.status_code == status
    assert reason in response.text
    assert counts(db_url) == before


def test_bad_signature_refused_and_nothing_written(client: TestClient, db_url: str) -> None:
    form = twilio_form("hola")
    signature = sign("/webhooks/twilio/sms", form)
    form["Body"] = "hola!"  # changed after signing
    before = counts(db_url)
    response = client.post(
        "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403
    assert client.post("/webhooks/twilio/sms", data=form).status_code == 403
    assert counts(db_url) == before


def test_signature_covers_blank_fields(client: TestClient, db_url: str) -> None:
    form = twilio_form("hola")
    assert form["ToZip"] == ""
    without_blank = {k: v for k, v in form.items() if v != ""}
    signature = sign("/webhooks/twilio/sms", without_blank)
    response = client.post(
        "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


def test_body_over_64_kib_refused(client: TestClient, db_url: str) -> None:
    form = twilio_form("x" * (65 * 1024))
    before = counts(db_url)
    assert post_twilio(client, form).status_code == 413
    assert counts(db_url) == before


def test_wrong_content_type_refused(client: TestClient, db_url: str) -> None:
    response = client.post(
        "/webhooks/twilio/sms", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 403)


# ---------------------------------------------------------------- Africa's Talking


def test_at_sms_opens_case_and_queues_reply_in_outbox(client: TestClient, db_url: str) -> None:
    response = post_at(client, at_form("Necesito turno para el DNI"))
    assert response.status_code == 200
    with Db(db_url) as db:
        (case,) = db.cases()
        (message,) = db.outbox()
        assert (message.provider, message.status, message.to_address) == (
            "africastalking",
            "pending",
            "+5491155550001",
        )
        assert case.tracking_number[:4] in message.body.replace(" ", "")[: len(message.body)]
        assert tracking_in(message.body) == case.tracking_number


def test_at_redelivery_is_idempotent(client: TestClient, db_url: str) -> None:
    form = at_form("Consulta por la pension", ref="ATXid_redelivered")
    post_at(client, form)
    before = counts(db_url)
    assert post_at(client, form).status_code == 200
    assert counts(db_url) == before


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_at_bad_token_refused(client: TestClient, db_url: str, token: str | None) -> None:
    query = "" if token is None else f"?token={token}"
    before = counts(db_url)
    response = client.post(f"/webhooks/africastalking/sms{query}", data=at_form("hola"))
    assert response.status_code == 403
    assert counts(db_url) == before


def test_at_missing_field_refused(client: TestClient, db_url: str) -> None:
    form = at_form("hola")
    del form["id"]
    before = counts(db_url)
    response = client.post(f"/webhooks/africastalking/sms?token={AT_TOKEN}", data=form)
    assert response.status_code == 400 and "id" in response.text
    assert counts(db_url) == before


def test_delivery_report_updates_outbox(client: TestClient, db_url: str) -> None:
    post_at(client, at_form("Consulta"))
    with Db(db_url) as db, db.engine.begin() as conn:
        conn.execute(update(OutboundMessage).values(status="sent", provider_ref="ATXid_sent_1"))
    report = {"id": "ATXid_sent_1", "status": "Success", "phoneNumber": "+5491155550001"}
    assert post_at(client, report, "delivery").status_code == 200
    late = dict(report, status="Sent")  # a late, earlier report never moves it back
    assert post_at(client, late, "delivery").status_code == 200
    with Db(db_url) as db:
        assert db.outbox()[0].status == "delivered"
    unknown = post_at(client, dict(report, id="ATXid_nobody"), "delivery")
    assert unknown.status_code == 404
    bad = post_at(client, dict(report, status="Exploded"), "delivery")
    assert bad.status_code == 400 and "Success" in bad.text


def test_twilio_status_callback_and_opt_out_code(client: TestClient, db_url: str) -> None:
    post_at(client, at_form("Consulta"))  # any outbox row will do
    sid = message_sid()
    with Db(db_url) as db, db.engine.begin() as conn:
        conn.execute(
            update(OutboundMessage).values(status="sent", provider="twilio", provider_ref=sid)
        )
    form = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "21610"}
    response = post_twilio(client, form, "/webhooks/twilio/status")
    assert response.status_code == 200
    with Db(db_url) as db:
        assert db.outbox()[0].status == "undelivered"
        assert db.contacts()[0].provider_opted_out_at is not None


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok", "spooled": 0}
