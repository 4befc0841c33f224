"""Satisfaction surveys over the real stack: closed case -> one survey -> a digit -> the score."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.db import make_engine
from casestore.models import Case, CaseEvent, OutboundMessage, Survey
from feedback.surveys import send_due_surveys
from tests.helpers import Db, at_form, post_at, post_twilio, twilio_form

PHONE = "+5491155550101"


def reply_of(xml: str) -> str:
    match = re.search(r"<Message>(.*)</Message>", xml, re.S)
    return match.group(1) if match else ""


def open_case(client: TestClient, text: str = "Tarjeta alimentar", phone: str = PHONE) -> str:
    reply = reply_of(post_twilio(client, twilio_form(text, sender=phone)).text)
    match = re.search(r"(\d{4} \d{4} \d{2})", reply)
    assert match, reply
    return match.group(1).replace(" ", "")


def close(client: TestClient, token: str, number: str) -> None:
    response = client.post(
        f"/api/v1/cases/{number}/status",
        json={"status": "closed", "note": "entregada"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text


def send_due(db_url: str, config: Config, at: datetime | None = None) -> int:
    """Move every scheduled survey's due time to the past and run the due sweep."""
    engine = make_engine(db_url)
    now = at or datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.execute(
            update(Survey)
            .where(Survey.status == "scheduled")
            .values(due_at=now - timedelta(seconds=1))
        )
    with Session(engine) as session, session.begin():
        counts = send_due_surveys(session, config, "outbox", now)
    engine.dispose()
    return counts.asked


def noon_local(config: Config) -> datetime:
    local = datetime.now(config.timezone).replace(hour=12, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def test_closing_schedules_one_survey_after_delay(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    with Db(db_url) as db, Session(db.engine) as session:
        (survey,) = session.scalars(select(Survey)).all()
        assert survey.status == "scheduled"
        assert survey.due_at >= datetime.now(UTC) + timedelta(minutes=59)
    # Reopen and close again: still one survey for the case.
    for status in ("in_progress", "closed"):
        client.post(
            f"/api/v1/cases/{number}/status",
            json={"status": status},
            headers={"Authorization": f"Bearer {token}"},
        )
    with Db(db_url) as db, Session(db.engine) as session:
        assert len(session.scalars(select(Survey)).all()) == 1
    detail = client.get(f"/api/v1/cases/{number}", headers={"Authorization": f"Bearer {token}"})
    assert detail.json()["survey"]["status"] == "scheduled"


def test_sms_survey_rating_and_comment_reach_the_case(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    assert send_due(db_url, config, noon_local(config)) == 1
    with Db(db_url) as db:
        question = [m for m in db.outbox() if m.kind == "survey"]
        assert len(question) == 1 and "1 (muy mal) al 5" in question[0].body
    thanks = reply_of(post_twilio(client, twilio_form("5 excelente", sender=PHONE)).text)
    assert "gracias por su respuesta" in thanks
    detail = client.get(f"/api/v1/cases/{number}", headers={"Authorization": f"Bearer {token}"})
    survey = detail.json()["survey"]
    assert (survey["status"], survey["rating"], survey["comment"]) == ("done", 5, "5 excelente")
    with Db(db_url) as db:
        assert len(db.cases()) == 1  # the answer opened nothing


@pytest.mark.parametrize(
    ("answer", "rating"),
    [("4", 4), ("cuatro", 4), ("Four", 4), ("3 estrellas", 3), (" 2. ", 2), ("5/5", 5)],
)
def test_answer_shapes(
    client: TestClient, db_url: str, token: str, config: Config, answer: str, rating: int
) -> None:
    number = open_case(client)
    close(client, token, number)
    send_due(db_url, config, noon_local(config))
    post_twilio(client, twilio_form(answer, sender=PHONE))
    with Db(db_url) as db, Session(db.engine) as session:
        survey = session.scalars(select(Survey)).one()
        assert survey.rating == rating


def test_unclear_answer_gets_one_clarification_then_comment(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    send_due(db_url, config, noon_local(config))
    clarify = reply_of(post_twilio(client, twilio_form("3 o 4", sender=PHONE)).text)
    assert "no entendimos" in clarify
    ask_comment = reply_of(post_twilio(client, twilio_form("4", sender=PHONE)).text)
    assert "que podemos mejorar" in ask_comment
    post_twilio(client, twilio_form("Que atiendan mas rapido", sender=PHONE))
    with Db(db_url) as db, Session(db.engine) as session:
        survey = session.scalars(select(Survey)).one()
        assert (survey.status, survey.rating, survey.comment) == (
            "done",
            4,
            "Que atiendan mas rapido",
        )
        assert len(session.scalars(select(Case)).all()) == 1


def test_low_score_flags_case_for_follow_up(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    send_due(db_url, config, noon_local(config))
    answer = reply_of(post_twilio(client, twilio_form("1", sender=PHONE)).text)
    assert "supervisor" in answer
    with Db(db_url) as db, Session(db.engine) as session:
        survey = session.scalars(select(Survey)).one()
        assert survey.low_score and survey.rating == 1
        kinds = [e.kind for e in session.scalars(select(CaseEvent).order_by(CaseEvent.id))]
        assert "survey_rating" in kinds


def test_stop_mid_survey_opts_out(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    send_due(db_url, config, noon_local(config))
    post_twilio(client, twilio_form("BAJA", sender=PHONE))
    with Db(db_url) as db:
        with Session(db.engine) as session:
            survey = session.scalars(select(Survey)).one()
            assert (survey.status, survey.reason) == ("skipped", "opted_out")
        assert db.contacts()[0].opted_out_at is not None
    # Next message is a new request again, not a survey answer.
    post_twilio(client, twilio_form("Necesito un turno para el DNI", sender=PHONE))
    with Db(db_url) as db:
        assert len(db.cases()) == 2


def test_opted_out_citizen_gets_no_survey(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    post_twilio(client, twilio_form("STOP", sender=PHONE))
    close(client, token, number)
    assert send_due(db_url, config, noon_local(config)) == 0
    with Db(db_url) as db:
        with Session(db.engine) as session:
            assert session.scalars(select(Survey)).one().reason == "opted_out"
        assert not [m for m in db.outbox() if m.kind == "survey"]


def test_quiet_hours_postpone_and_fatigue_cap(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    first = open_case(client, "Tarjeta alimentar")
    close(client, token, first)
    late = datetime.now(config.timezone).replace(hour=23, minute=30).astimezone(UTC)
    assert send_due(db_url, config, late) == 0  # 23:30 is quiet: moved to 09:00
    with Db(db_url) as db, Session(db.engine) as session:
        survey = session.scalars(select(Survey)).one()
        assert survey.due_at.astimezone(config.timezone).hour == 9
    assert send_due(db_url, config, noon_local(config)) == 1
    post_twilio(client, twilio_form("5 muy bien", sender=PHONE))
    # A second case closed days later: inside the fatigue window, no second survey.
    with Db(db_url) as db, db.engine.begin() as conn:
        conn.execute(update(Case).values(status="closed"))
    second = open_case(client, "Pension por discapacidad")
    close(client, token, second)
    assert send_due(db_url, config, noon_local(config) + timedelta(days=2)) == 0
    with Db(db_url) as db, Session(db.engine) as session:
        reasons = [s.reason for s in session.scalars(select(Survey).order_by(Survey.id))]
        assert reasons[1] == "fatigue"


def test_unanswered_survey_expires_and_reply_opens_case(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    send_due(db_url, config, noon_local(config))
    with Db(db_url) as db, db.engine.begin() as conn:
        conn.execute(update(Survey).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    post_twilio(client, twilio_form("Hola, otra consulta por comedores", sender=PHONE))
    with Db(db_url) as db:
        assert len(db.cases()) == 2


def test_survey_question_counts_once_in_outbox(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    send_due(db_url, config, noon_local(config))
    send_due(db_url, config, noon_local(config))
    with Db(db_url) as db, Session(db.engine) as session:
        count = len(
            session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "survey")).all()
        )
    assert count == 1


def test_scores_and_follow_ups_in_the_api(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    answers = {"+5491155550201": "5", "+5491155550202": "4", "+5491155550203": "1"}
    for phone in answers:
        close(client, token, open_case(client, "Tarjeta alimentar", phone=phone))
    close(client, token, open_case(client, "Necesito chapas para el techo", phone="+5491155550204"))
    assert send_due(db_url, config, noon_local(config)) == 4
    for phone, answer in answers.items():
        post_twilio(client, twilio_form(answer, sender=phone))
    headers = {"Authorization": f"Bearer {token}"}
    by_department = client.get("/api/v1/surveys/scores?by=department", headers=headers).json()
    items = {i["key"]: i for i in by_department["items"]}
    assert items["ALIM"]["asked"] == 3 and items["ALIM"]["answered"] == 3
    assert items["ALIM"]["csat"] == pytest.approx(2 / 3, abs=1e-3)
    assert items["ALIM"]["mean"] == pytest.approx(10 / 3, abs=0.01)
    assert items["ALIM"]["low_scores"] == 1
    assert items["HAB"]["response_rate"] == 0
    by_operator = client.get("/api/v1/surveys/scores?by=operator", headers=headers).json()
    assert [i["key"] for i in by_operator["items"]] == ["admin"]
    assert client.get("/api/v1/surveys/scores?by=planet", headers=headers).status_code == 400
    assert client.get("/api/v1/surveys/scores").status_code == 401
    follow = client.get("/api/v1/surveys/follow-ups", headers=headers).json()["items"]
    assert [(f["rating"], f["department"]) for f in follow] == [(1, "ALIM")]


def test_status_change_notifies_citizen_once_and_marks_first_response(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    headers = {"Authorization": f"Bearer {token}"}
    client.post(f"/api/v1/cases/{number}/status", json={"status": "in_progress"}, headers=headers)
    detail = client.get(f"/api/v1/cases/{number}", headers=headers).json()
    assert detail["first_response_at"] is not None
    with Db(db_url) as db:
        (note,) = [m for m in db.outbox() if m.kind == "notification"]
        assert "estamos trabajando en su pedido" in note.body
        assert note.to_address == PHONE and note.status == "pending"
    post_twilio(client, twilio_form("BAJA", sender=PHONE))
    client.post(f"/api/v1/cases/{number}/status", json={"status": "resolved"}, headers=headers)
    with Db(db_url) as db:
        assert len([m for m in db.outbox() if m.kind == "notification"]) == 1  # opted out


# ---------------------------------------------------------------- urgent always wins
URGENT = "ayuda mi pareja me pego, violencia de genero, tengo miedo"


def survey_row(db_url: str) -> Survey:
    with Db(db_url) as db, Session(db.engine) as session:
        return session.scalars(select(Survey)).one()


def case_by_number(db_url: str, number: str) -> Case:
    with Db(db_url) as db, Session(db.engine) as session:
        return session.scalars(select(Case).where(Case.tracking_number == number)).one()


def tracking_in(reply: str) -> str:
    match = re.search(r"(\d{4} \d{4} \d{2})", reply)
    assert match, reply
    return match.group(1).replace(" ", "")


@pytest.mark.parametrize("rated_first", [False, True], ids=["awaiting-rating", "after-rating"])
def test_urgent_message_while_survey_waits_opens_urgent_case(
    client: TestClient, db_url: str, token: str, config: Config, rated_first: bool
) -> None:
    first = open_case(client)
    close(client, token, first)
    send_due(db_url, config, noon_local(config))
    if rated_first:
        post_twilio(client, twilio_form("5", sender=PHONE))
    reply = reply_of(post_twilio(client, twilio_form(URGENT, sender=PHONE)).text)
    assert "URGENTE" in reply and "144" in reply and "911" in reply
    assert "gracias por su respuesta" not in reply
    urgent = case_by_number(db_url, tracking_in(reply))
    assert urgent.tracking_number != first
    assert (urgent.urgent, urgent.priority, urgent.department) == (True, "urgent", "GEN")
    # Due within the urgent service level: escalated to the supervisors like any urgent case.
    assert urgent.due_at is not None
    assert urgent.due_at <= urgent.created_at + timedelta(hours=config.raw["sla"]["urgent_hours"])
    survey = survey_row(db_url)
    # The survey is left exactly as it was: still waiting, no comment taken from the request.
    assert survey.status == ("rated" if rated_first else "asked")
    assert survey.rating == (5 if rated_first else None) and survey.comment is None
    if rated_first:
        # A follow-up joins the urgent case: never taken as the survey's comment.
        follow = reply_of(
            post_twilio(client, twilio_form("estoy con mi vecina", sender=PHONE)).text
        )
        assert "sumamos su mensaje" in follow and tracking_in(follow) == urgent.tracking_number
        survey = survey_row(db_url)
        assert (survey.status, survey.rating, survey.comment) == ("done", 5, None)
    else:  # the survey still takes its answer afterwards
        post_twilio(client, twilio_form("4", sender=PHONE))
        assert survey_row(db_url).rating == 4


def test_urgent_message_over_africastalking_while_survey_waits(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    close(client, token, open_case(client))
    send_due(db_url, config, noon_local(config))
    post_at(client, at_form(URGENT, sender=PHONE))
    with Db(db_url) as db:
        (urgent,) = [c for c in db.cases() if c.urgent]
        (answer,) = [m for m in db.outbox() if m.kind == "reply" and m.case_id == urgent.id]
        assert "144" in answer.body and tracking_in(answer.body) == urgent.tracking_number
    assert survey_row(db_url).status == "asked"


@pytest.mark.parametrize(
    ("text", "department"),
    [
        ("Necesito mercaderia para el comedor", "ALIM"),
        ("mas o menos", "ATC"),
        ("tengo 3 hijos y no tengo trabajo", "ATC"),
    ],
)
def test_anything_but_a_rating_opens_a_case_and_survey_keeps_waiting(
    client: TestClient, db_url: str, token: str, config: Config, text: str, department: str
) -> None:
    close(client, token, open_case(client))
    send_due(db_url, config, noon_local(config))
    reply = reply_of(post_twilio(client, twilio_form(text, sender=PHONE)).text)
    assert "recibimos su pedido" in reply
    assert case_by_number(db_url, tracking_in(reply)).department == department
    assert survey_row(db_url).status == "asked"
    post_twilio(client, twilio_form("un 4", sender=PHONE))
    assert survey_row(db_url).rating == 4


@pytest.mark.parametrize(
    ("comment", "kept"),
    [
        ("Que atiendan mas rapido", True),
        ("Gracias pero ahora necesito chapas para el techo", False),
        ("Me atendieron bien. " * 8, False),  # longer than [survey] comment_max_chars
    ],
)
def test_comment_after_rating_only_when_short_and_no_request(
    client: TestClient, db_url: str, token: str, config: Config, comment: str, kept: bool
) -> None:
    close(client, token, open_case(client))
    send_due(db_url, config, noon_local(config))
    post_twilio(client, twilio_form("5", sender=PHONE))
    reply = reply_of(post_twilio(client, twilio_form(comment, sender=PHONE)).text)
    survey = survey_row(db_url)
    with Db(db_url) as db:
        cases = db.cases()
    if kept:
        assert "gracias por su respuesta" in reply
        assert (survey.status, survey.comment, len(cases)) == ("done", comment, 1)
    else:
        assert tracking_in(reply) == cases[-1].tracking_number and len(cases) == 2
        # The rating stays; the survey no longer waits for a comment, so a short follow-up
        # on the new request joins it instead of being taken as one.
        assert (survey.status, survey.rating, survey.comment) == ("done", 5, None)
        follow_up = reply_of(post_twilio(client, twilio_form("Es urgente", sender=PHONE)).text)
        assert "sumamos su mensaje" in follow_up and tracking_in(follow_up) == tracking_in(reply)


def test_rating_right_after_closure_answers_the_survey_before_it_is_sent(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    reply = reply_of(post_twilio(client, twilio_form("5", sender=PHONE)).text)
    assert "que podemos mejorar" in reply  # the survey's next question, not a new case
    with Db(db_url) as db:
        assert [c.tracking_number for c in db.cases()] == [number]
    survey = survey_row(db_url)
    assert (survey.status, survey.rating) == ("rated", 5)
    assert send_due(db_url, config, noon_local(config)) == 0  # the question is never sent
    post_twilio(client, twilio_form("Muy amables", sender=PHONE))
    survey = survey_row(db_url)
    assert (survey.status, survey.comment) == ("done", "Muy amables")


def test_rating_long_after_closure_is_a_new_request(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    number = open_case(client)
    close(client, token, number)
    hours = int(config.survey["early_answer_hours"])
    with Db(db_url) as db, db.engine.begin() as conn:
        conn.execute(update(Case).values(closed_at=datetime.now(UTC) - timedelta(hours=hours + 1)))
    reply = reply_of(post_twilio(client, twilio_form("5", sender=PHONE)).text)
    assert "recibimos su pedido" in reply
    assert survey_row(db_url).status == "scheduled"


def test_survey_question_does_not_repeat_the_closure_notice(
    client: TestClient, db_url: str, token: str, config: Config
) -> None:
    close(client, token, open_case(client))
    send_due(db_url, config, noon_local(config))
    with Db(db_url) as db:
        sent = [m.body for m in db.outbox() if m.kind in ("notification", "survey")]
    assert len(sent) == 2 and "fue cerrado" in sent[0]
    assert "cerrado" not in sent[1] and "1 (muy mal) al 5" in sent[1]
