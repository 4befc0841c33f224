"""An SMS to a citizen is one definition: the intake's Core statements and the ORM's queue_sms
write the same interaction, outbox row and timeline event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from casestore.db import make_engine
from casestore.intake import open_case, statements
from casestore.models import CaseEvent, Interaction, OutboundMessage, utcnow
from casestore.outgoing import OnTimeline, OutgoingSms, queue_sms


def _rows(session: Session, model: type[Any], skip: set[str]) -> list[dict[str, Any]]:
    table: Table = model.__table__
    rows = session.execute(select(table).order_by(table.c.id)).mappings()
    return [{k: v for k, v in row.items() if k not in skip} for row in rows]


def test_the_intake_and_the_orm_queue_the_same_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    now = utcnow()
    try:
        with Session(engine) as session, session.begin():
            conn = session.connection()
            case_id, _ = open_case(
                conn,
                contact_id=None,
                channel="sms",
                category="alimentos",
                department="ALIM",
                urgent=False,
                description="Necesito mercaderia",
                language="es",
                now=now,
                length=10,
            )
            sms = OutgoingSms(
                case_id=case_id,
                contact_id=None,
                address="+5491155550101",
                body="Recibimos su pedido",
                kind="reply",
                provider="twilio",
                automatic=True,
                now=now,
            )
            event = OnTimeline(data={"channel": "sms", "automatic": True})
            queue_sms(session, sms, event=event)
            session.flush()
            sql = statements(conn)
            core = sql.run(conn, "insert_outbound", sms.interaction_row())
            assert core is not None
            sql.run(conn, "insert_event", sms.event_row(case_id, core["id"], event))
            sql.run(conn, "insert_outbox", sms.outbox_row(core["id"]))

        with Session(engine) as session:
            orm_out, core_out = _rows(session, Interaction, {"id"})
            assert orm_out == core_out
            assert orm_out["direction"] == "out" and orm_out["text"] == "Recibimos su pedido"
            orm_msg, core_msg = _rows(session, OutboundMessage, {"id", "interaction_id"})
            assert orm_msg == core_msg
            assert orm_msg["status"] == "pending" and orm_msg["to_address"] == "+5491155550101"
            created, orm_event, core_event = _rows(session, CaseEvent, {"id", "interaction_id"})
            assert created["kind"] == "created"
            assert orm_event == core_event
            assert orm_event["kind"] == "message_out" and orm_event["actor"] == "system"
    finally:
        engine.dispose()
