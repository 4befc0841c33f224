"""Storing an SMS the gateway kept in its spool while the database was unreachable.

The citizen was already answered with a receipt carrying a tracking number allocated at that
moment: the case gets exactly that number (or joins the case opened under it by an earlier
spooled message from the same phone), and the receipt is recorded, queued for sending only
when it did not travel in the HTTP answer. Idempotent on the provider's id, like all intake.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, select

from casestore import sla
from casestore.config import Config
from casestore.inbound import IntakeResult
from casestore.intake import (
    IntakeRequest,
    TrackingTaken,
    _record_reply,
    _stored_reply,
    add_event,
    cases,
    open_case,
    process_sms,
    record_inbound,
    statements,
    upsert_contact,
)
from sms.conversation import Action, Decision
from sms.phone import contact_key

log = logging.getLogger(__name__)


def replay_sms(
    conn: Connection,
    request: IntakeRequest,
    config: Config,
    *,
    number: str | None,
    reply: str | None,
) -> IntakeResult:
    """Store one spooled SMS inside the caller's transaction.

    Without `number` (a keyword, a sender that is not a phone) the normal rules apply and any
    answer goes out through the outbox.
    """
    inbound, plan = request.inbound, request.plan
    if number is None or inbound.phone is None:
        return process_sms(conn, request, config)
    now = inbound.received_at
    contact = upsert_contact(conn, contact_key(inbound.phone), now, inbound.channel)
    inbound_id = record_inbound(conn, inbound, contact.id)
    if inbound_id is None:
        return _stored_reply(conn, inbound)
    language = config.language_or_default(plan.language)
    existing = conn.execute(
        select(cases.c.id, cases.c.contact_id).where(cases.c.tracking_number == number)
    ).first()
    if existing is not None and existing.contact_id == contact.id:
        case_id, action = int(existing.id), Action.JOIN_CASE
        add_event(
            conn,
            case_id=case_id,
            kind="message_in",
            at=now,
            actor="citizen",
            text=inbound.text,
            interaction_id=inbound_id,
            data={"channel": inbound.channel, "spooled": True},
        )
        statements(conn).run(conn, "touch_case", {"b_id": case_id, "b_at": now})
    else:
        category = config.categories.get(plan.category) or config.categories[config.triage_category]
        urgent = plan.urgent or category.urgent

        def open_with(wanted: str | None) -> tuple[int, str]:
            return open_case(
                conn,
                contact_id=contact.id,
                channel=inbound.channel,
                category=category.code,
                department=category.department,
                urgent=urgent,
                description=inbound.text,
                language=language,
                now=now,
                length=config.tracking_length,
                interaction_id=inbound_id,
                due=sla.due_at(config.raw, config.timezone, now, category.code, urgent),
                number=wanted,
            )

        try:
            case_id, number = open_with(number)
        except TrackingTaken:
            # Two hosts' spools drew the same number (1 in 10^8): keep the request anyway.
            log.warning("spooled tracking number already in use; the case gets a new one")
            case_id, number = open_with(None)
        action = Action.NEW_CASE
    statements(conn).run(conn, "link_interaction", {"b_id": inbound_id, "b_case": case_id})
    if reply:
        decision = Decision(action, language, None)
        _record_reply(conn, request, decision, reply, inbound_id, contact.id, case_id, now)
    statements(conn).run(
        conn,
        "update_contact",
        {"b_id": contact.id, "conversation_case_id": case_id, "conversation_at": now},
    )
    return IntakeResult(
        duplicate=False, reply=reply, tracking_number=number, case_id=case_id, action=action.value
    )
