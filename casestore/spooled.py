"""Storing an SMS the gateway kept in its spool while the database was unreachable.

The citizen was already answered with a receipt carrying a tracking number allocated at that
moment: the case gets exactly that number (or joins the case opened under it by an earlier
spooled message from the same phone), and the receipt is recorded, queued for sending only
when it did not travel in the HTTP answer. Idempotent on the provider's id, like all intake.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, func, select, update

from casestore import sla
from casestore.config import Config
from casestore.hooks import SurveyHooks
from casestore.inbound import IntakeResult
from casestore.intake import (
    IntakeRequest,
    _record_reply,
    _stored_reply,
    cases,
    events,
    interactions,
    join_case,
    open_case_as_told,
    outbox,
    process_sms,
    record_inbound,
    statements,
    upsert_contact,
)
from casestore.models import Direction, MessageStatus
from casestore.tracking import format_tracking
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
    surveys: SurveyHooks,
) -> IntakeResult:
    """Store one spooled SMS inside the caller's transaction.

    Without `number` (a keyword, a sender that is not a phone) the normal rules apply and any
    answer goes out through the outbox.
    """
    inbound, plan = request.inbound, request.plan
    if number is None or inbound.phone is None:
        return process_sms(conn, request, config, surveys=surveys)
    now = inbound.received_at
    contact = upsert_contact(conn, contact_key(inbound.phone), now, inbound.channel)
    inbound_id = record_inbound(conn, inbound, contact.id)
    if inbound_id is None:
        stored = _stored_reply(conn, inbound)
        if request.reply_inline and stored.case_id is not None:
            # Stored just before the cut, but the answer that reached the citizen came from
            # the spool: the case takes the number the citizen holds.
            adopt_number(conn, inbound.provider, inbound.provider_ref, number)
        return stored
    language = config.language_or_default(plan.language)
    existing = conn.execute(
        select(cases.c.id, cases.c.contact_id).where(cases.c.tracking_number == number)
    ).first()
    if existing is not None and existing.contact_id == contact.id:
        case_id, action = int(existing.id), Action.JOIN_CASE
        join_case(conn, case_id, inbound, inbound_id, spooled=True)
    else:
        category = config.categories.get(plan.category) or config.categories[config.triage_category]
        urgent = plan.urgent or category.urgent

        case_id, number = open_case_as_told(
            conn,
            number=number,
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
        )
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


def adopt_number(conn: Connection, provider: str, provider_ref: str, number: str) -> bool:
    """Give the case this contact opened the spooled `number` the citizen was told.

    Happens when the database committed a contact but the connection broke before the gateway
    heard of it, so the gateway spooled it and answered with a spooled number. Only a case this
    very contact opened is renumbered (nobody else was told its number); its automatic reply
    and pending receipts are rewritten to match. True when the case was renumbered.
    """
    row = conn.execute(
        select(interactions.c.id, cases.c.id.label("case_id"), cases.c.tracking_number)
        .join(cases, cases.c.id == interactions.c.case_id)
        .join(
            events,
            (events.c.case_id == cases.c.id)
            & (events.c.kind == "created")
            & (events.c.interaction_id == interactions.c.id),
        )
        .where(interactions.c.provider == provider, interactions.c.provider_ref == provider_ref)
    ).first()
    if row is None or row.tracking_number == number:
        return False
    taken = conn.execute(select(cases.c.id).where(cases.c.tracking_number == number)).first()
    if taken is not None:
        log.warning("spooled tracking number already in use; the case keeps its own")
        return False
    old, new = format_tracking(row.tracking_number), format_tracking(number)
    conn.execute(update(cases).where(cases.c.id == row.case_id).values(tracking_number=number))
    conn.execute(
        update(interactions)
        .where(
            interactions.c.case_id == row.case_id, interactions.c.direction == Direction.OUT.value
        )
        .values(text=func.replace(interactions.c.text, old, new))
    )
    conn.execute(
        update(outbox)
        .where(outbox.c.case_id == row.case_id, outbox.c.status == MessageStatus.PENDING.value)
        .values(body=func.replace(outbox.c.body, old, new))
    )
    log.warning("a contact stored as the connection broke takes its spooled tracking number")
    return True
