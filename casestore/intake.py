"""The intake hot path: an inbound SMS becomes contact, interaction, case, event and reply rows.

Written with pre-built SQLAlchemy Core statements on a Connection (no ORM) because it runs for
every webhook; `casestore.writer` batches many of these into one transaction (group commit).
Every insert is `ON CONFLICT`-safe so one redelivered webhook cannot abort a batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    case,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from casestore import sla, tracking
from casestore.config import Config
from casestore.fit import clip, column_length
from casestore.hooks import SurveyHooks
from casestore.inbound import Inbound, IntakeResult
from casestore.models import (
    Case,
    CaseEvent,
    Contact,
    Interaction,
    OutboundMessage,
    UTCDateTime,
)
from casestore.outgoing import OnTimeline, OutgoingSms
from casestore.prepared import Prepared, Row
from casestore.states import CaseStatus, Channel, Direction, is_open
from sms.conversation import (
    NEW_CASES_PER_DAY,
    Action,
    CaseSummary,
    ContactState,
    Decision,
    OpenCase,
    Plan,
    decide,
    in_window,
    may_reply,
    render_reply,
)
from sms.phone import contact_key

contacts = cast(Table, Contact.__table__)
cases = cast(Table, Case.__table__)
interactions = cast(Table, Interaction.__table__)
events = cast(Table, CaseEvent.__table__)
outbox = cast(Table, OutboundMessage.__table__)

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
TRACKING_ATTEMPTS = 20
log = logging.getLogger(__name__)
ADDRESS_LENGTH = column_length(Interaction.address)


class TrackingTaken(Exception):
    """The tracking number asked for (one allocated during an outage) belongs to a case."""


@dataclass(frozen=True)
class IntakeRequest:
    """One inbound message plus how its reply travels: in the HTTP answer, or via the outbox."""

    inbound: Inbound
    plan: Plan
    reply_inline: bool


def _insert_for(dialect: str, table: Table) -> Any:
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


class Statements:
    """Statements built once per dialect and executed with parameter dicts: building a
    statement with literal values costs more than running it, on the path every webhook takes."""

    def __init__(self, dialect_obj: Dialect) -> None:
        dialect = dialect_obj.name
        self._dialect = dialect_obj
        self._prepared: dict[tuple[str, tuple[str, ...]], Prepared] = {}
        ins = _insert_for(dialect, interactions)
        self.insert_inbound = ins.on_conflict_do_nothing(
            index_elements=["provider", "provider_ref"]
        ).returning(interactions.c.id)
        upsert = _insert_for(dialect, contacts)
        self.upsert_contact = upsert.on_conflict_do_update(
            index_elements=["phone"], set_={"last_inbound_at": upsert.excluded.last_inbound_at}
        ).returning(*contacts.c)
        # The same, counting the SMS in the number's one-minute window in the same statement
        # (no COUNT(*), no lost increments between concurrent writers).
        same_minute = contacts.c.inbound_window > bindparam("b_since", type_=UTCDateTime())
        counting = _insert_for(dialect, contacts)
        self.upsert_contact_counting = counting.on_conflict_do_update(
            index_elements=["phone"],
            set_={
                "last_inbound_at": counting.excluded.last_inbound_at,
                "inbound_window": case(
                    (same_minute, contacts.c.inbound_window),
                    else_=counting.excluded.last_inbound_at,
                ),
                # Literal SQL: the prepared executor takes named parameters only.
                "inbound_count": case(
                    (same_minute, contacts.c.inbound_count + literal_column("1")),
                    else_=literal_column("1"),
                ),
            },
        ).returning(*contacts.c)
        self.insert_case = (
            _insert_for(dialect, cases)
            .on_conflict_do_nothing(index_elements=["tracking_number"])
            .returning(cases.c.id)
        )
        self.insert_event = events.insert()
        self.insert_outbound = interactions.insert().returning(interactions.c.id)
        self.insert_outbox = outbox.insert()
        self.case_by_id = select(cases.c.id, cases.c.tracking_number, cases.c.status).where(
            cases.c.id == bindparam("b_id")
        )
        # A merged case answers with the case it was merged into.
        merged = cases.alias("merged")
        self.case_summary = (
            select(
                func.coalesce(merged.c.tracking_number, cases.c.tracking_number).label(
                    "tracking_number"
                ),
                func.coalesce(merged.c.status, cases.c.status).label("status"),
                func.coalesce(merged.c.department, cases.c.department).label("department"),
            )
            .select_from(cases)
            .outerjoin(merged, merged.c.id == cases.c.merged_into_id)
            .where(cases.c.tracking_number == bindparam("b_number"))
        )
        self.mark_limit_hit = (
            update(cases)
            .where(cases.c.id == bindparam("b_id"))
            .values(limit_hit_at=bindparam("b_at"))
        )
        self.touch_case = (
            update(cases)
            .where(cases.c.id == bindparam("b_id"))
            .values(updated_at=bindparam("b_at"))
        )
        self.link_interaction = (
            update(interactions)
            .where(interactions.c.id == bindparam("b_id"))
            .values(case_id=bindparam("b_case"))
        )
        self.update_contact = update(contacts).where(contacts.c.id == bindparam("b_id"))

    def run(self, conn: Connection, name: str, params: dict[str, Any]) -> Row | None:
        """Execute statement `name` on the DBAPI cursor; its first returned row, if any."""
        key = (name, tuple(sorted(params)))
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = Prepared(getattr(self, name), self._dialect, params)
            self._prepared[key] = prepared
        return prepared.execute(conn, params)


_statements: dict[str, Statements] = {}


def statements(conn: Connection) -> Statements:
    dialect = conn.dialect.name
    found = _statements.get(dialect)
    if found is None:
        found = _statements[dialect] = Statements(conn.dialect)
    return found


def _window_count(
    window: datetime | None, count: int, now: datetime, span: timedelta = HOUR
) -> int:
    return count if window is not None and now - window < span else 0


def _stored_reply(conn: Connection, inbound: Inbound) -> IntakeResult:
    """The answer first given to this provider reference (a redelivered webhook)."""
    original = interactions.alias("original")
    row = conn.execute(
        select(interactions.c.text, cases.c.tracking_number, original.c.case_id)
        .select_from(original)
        .outerjoin(interactions, interactions.c.reply_to_id == original.c.id)
        .outerjoin(cases, cases.c.id == original.c.case_id)
        .where(
            original.c.provider == inbound.provider,
            original.c.provider_ref == inbound.provider_ref,
        )
        .order_by(interactions.c.id)
        .limit(1)
    ).first()
    if row is None:
        return IntakeResult(duplicate=True, reply=None, action="duplicate")
    return IntakeResult(
        duplicate=True,
        reply=row.text,
        tracking_number=row.tracking_number,
        case_id=row.case_id,
        action="duplicate",
    )


def record_inbound(conn: Connection, inbound: Inbound, contact_id: int | None) -> int | None:
    """Insert the inbound interaction; None when this provider reference was already stored."""
    row = statements(conn).run(
        conn,
        "insert_inbound",
        {
            "contact_id": contact_id,
            "channel": inbound.channel,
            "direction": Direction.IN.value,
            "provider": inbound.provider,
            "provider_ref": inbound.provider_ref,
            "address": clip(inbound.sender, ADDRESS_LENGTH),
            "text": inbound.text,
            "media_urls": list(inbound.media_urls) or None,
            "automatic": False,
            "created_at": inbound.received_at,
        },
    )
    return None if row is None else int(row["id"])


def upsert_contact(
    conn: Connection, phone: str, now: datetime, channel: str, *, count_sms: bool = False
) -> Row:
    """Create the contact for this phone or touch it; returns the whole row. With `count_sms`
    the row's `inbound_count` also counts this SMS in the number's one-minute window."""
    params: dict[str, Any] = {
        "phone": phone,
        "preferred_channel": channel,
        "created_at": now,
        "last_inbound_at": now,
        "reply_count": 0,
        "lookup_count": 0,
        "inbound_count": 1 if count_sms else 0,
        "case_count": 0,
        "sms_capable": True,  # until a call from a landline or a provider says otherwise
    }
    if count_sms:
        params.update(inbound_window=now, b_since=now - MINUTE)
    row = statements(conn).run(
        conn, "upsert_contact_counting" if count_sms else "upsert_contact", params
    )
    assert row is not None
    return row


def open_case(
    conn: Connection,
    *,
    contact_id: int | None,
    channel: str,
    category: str,
    department: str,
    urgent: bool,
    description: str,
    language: str,
    now: datetime,
    length: int,
    actor: str = "citizen",
    interaction_id: int | None = None,
    due: datetime | None = None,
    number: str | None = None,
) -> tuple[int, str]:
    """Insert a case with a fresh random tracking number and its `created` event.

    With `number` (allocated while the database was unreachable) the case gets exactly that
    number, or `TrackingTaken` is raised.
    """
    for _ in range(1 if number is not None else TRACKING_ATTEMPTS):
        number_now = number if number is not None else tracking.generate(length)
        row = statements(conn).run(
            conn,
            "insert_case",
            {
                "tracking_number": number_now,
                "contact_id": contact_id,
                "channel": channel,
                "category": category,
                "department": department,
                "status": CaseStatus.NEW.value,
                "priority": "urgent" if urgent else "normal",
                "urgent": urgent,
                "description": description,
                "language": language,
                "created_at": now,
                "updated_at": now,
                "due_at": due,
            },
        )
        if row is not None:
            case_id = int(row["id"])
            add_event(
                conn,
                case_id=case_id,
                kind="created",
                at=now,
                actor=actor,
                text=description,
                to_status=CaseStatus.NEW.value,
                interaction_id=interaction_id,
                data={"channel": channel, "category": category, "urgent": urgent},
            )
            return case_id, number_now
    if number is not None:
        raise TrackingTaken(number)
    raise RuntimeError("could not find a free tracking number")  # pragma: no cover


def open_case_as_told(conn: Connection, *, number: str | None, **case: Any) -> tuple[int, str]:
    """`open_case` with the tracking number the citizen was already told (from the gateway's
    spool), or a fresh one when two hosts' spools drew the same number (1 in 10^8): the
    request is kept all the same. `case` takes `open_case`'s other arguments."""
    try:
        return open_case(conn, number=number, **case)
    except TrackingTaken:
        log.warning("spooled tracking number already in use; the case gets a new one")
        return open_case(conn, number=None, **case)


def join_case(
    conn: Connection, case_id: int, inbound: Inbound, inbound_id: int, *, spooled: bool = False
) -> None:
    """A citizen's message joins their open case: on its timeline, and the case is touched."""
    data: dict[str, Any] = {"channel": inbound.channel}
    if spooled:
        data["spooled"] = True
    add_event(
        conn,
        case_id=case_id,
        kind="message_in",
        at=inbound.received_at,
        actor="citizen",
        text=inbound.text,
        interaction_id=inbound_id,
        data=data,
    )
    statements(conn).run(conn, "touch_case", {"b_id": case_id, "b_at": inbound.received_at})


def add_event(
    conn: Connection,
    *,
    case_id: int,
    kind: str,
    at: datetime,
    actor: str,
    text: str = "",
    to_status: str | None = None,
    interaction_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append to a case's timeline."""
    statements(conn).run(
        conn,
        "insert_event",
        {
            "case_id": case_id,
            "kind": kind,
            "at": at,
            "actor": actor,
            "text": text,
            "from_status": None,
            "to_status": to_status,
            "interaction_id": interaction_id,
            "data": data,
        },
    )


def process_sms(
    conn: Connection, request: IntakeRequest, config: Config, *, surveys: SurveyHooks
) -> IntakeResult:
    """Apply the SMS conversation rules to one inbound message inside the caller's transaction."""
    inbound, plan = request.inbound, request.plan
    now = inbound.received_at
    if inbound.phone is None:
        # Alphanumeric senders and short codes: kept for the record, never answered.
        inserted = record_inbound(conn, inbound, None)
        if inserted is None:
            return _stored_reply(conn, inbound)
        return IntakeResult(duplicate=False, reply=None, action=Action.RECORD_ONLY.value)

    contact = upsert_contact(conn, contact_key(inbound.phone), now, inbound.channel, count_sms=True)
    inbound_id = record_inbound(conn, inbound, contact.id)
    if inbound_id is None:
        # A provider's redelivery of a message already stored is not another message: take
        # back the count the upsert just made (the row is this transaction's until commit, so
        # the returned count is exact; counting after the insert would cost every new SMS a
        # round trip to spare the rare redelivery one).
        if contact.inbound_count > 0:
            statements(conn).run(
                conn,
                "update_contact",
                {"b_id": contact.id, "inbound_count": contact.inbound_count - 1},
            )
        return _stored_reply(conn, inbound)

    conversation: OpenCase | None = None
    if contact.conversation_case_id is not None and plan.command is None:
        row = statements(conn).run(conn, "case_by_id", {"b_id": contact.conversation_case_id})
        if row is not None:
            conversation = OpenCase(row.id, row.tracking_number, row.status)

    limits = config.limits
    over_sms_limit = 0 < limits.sms_per_minute < contact.inbound_count
    if plan.command is None and not plan.urgent and not over_sms_limit:
        # Urgent always wins: the plan was made before anything else read the text, and an
        # urgent message is a case whatever survey waits. Otherwise the survey takes only what
        # is shaped like its answer; a bare rating right after a closure (before the question
        # went out) answers that case's survey. While the citizen writes on an open case (an
        # urgent one opened meanwhile, say) no early rating and no comment is taken.
        talking = (
            conversation is not None
            and is_open(conversation.status)
            and in_window(contact.conversation_at, now, config.conversation_window_minutes)
        )
        answered = _survey_reply(
            conn, request, config, contact, inbound_id, now, surveys=surveys, talking=talking
        )
        if answered is not None:
            return answered
    replies = _window_count(contact.reply_window, contact.reply_count, now)
    lookups = _window_count(contact.lookup_window, contact.lookup_count, now)
    state = ContactState(
        language=contact.language,
        opted_out=contact.opted_out_at is not None,
        conversation_case=conversation,
        conversation_at=contact.conversation_at,
        replies_this_hour=replies,
        lookups_this_hour=lookups,
        inbound_this_minute=contact.inbound_count,
        cases_today=cases_today(contact, now),
    )
    decision = decide(plan, state, now, config)
    contact_changes: dict[str, Any] = {}
    case_id: int | None = None
    number: str | None = None
    summary: CaseSummary | None = None
    template = decision.reply_template

    if decision.action is Action.NEW_CASE:
        category = config.categories[decision.category or config.triage_category]
        case_id, number = open_case(
            conn,
            contact_id=contact.id,
            channel=inbound.channel,
            category=category.code,
            department=category.department,
            urgent=decision.urgent,
            description=inbound.text,
            language=decision.language,
            now=now,
            length=config.tracking_length,
            interaction_id=inbound_id,
            due=sla.due_at(config.raw, config.timezone, now, category.code, decision.urgent),
        )
        contact_changes.update(
            conversation_case_id=case_id, conversation_at=now, **count_new_case(contact, now)
        )
    elif decision.action is Action.JOIN_CASE:
        assert conversation is not None
        case_id, number = conversation.case_id, conversation.tracking_number
        join_case(conn, case_id, inbound, inbound_id)
        contact_changes.update(conversation_at=now)
    elif decision.action is Action.STATUS:
        contact_changes.update(lookup_window=_window_start(contact.lookup_window, now))
        contact_changes.update(lookup_count=lookups + 1)
        if template == "status" and plan.tracking is not None and plan.tracking.digits:
            row = statements(conn).run(conn, "case_summary", {"b_number": plan.tracking.digits})
            if row is None:
                template = "status_unknown"
            else:
                summary = CaseSummary(row.tracking_number, row.status, row.department)
    elif decision.action is Action.STOP:
        contact_changes.update(opted_out_at=now)
        if contact.pending_survey_id is not None:
            surveys.opt_out(conn, contact.id, now)
    elif decision.action is Action.START:
        contact_changes.update(opted_out_at=None, provider_opted_out_at=None)

    first_over_minute = contact.inbound_count == limits.sms_per_minute + 1
    if case_id is not None:
        statements(conn).run(conn, "link_interaction", {"b_id": inbound_id, "b_case": case_id})
        # The first message over the per-minute limit, and each one over the daily case limit,
        # is marked on the case (the console shows it); later ones in the flood only join.
        if decision.limit == NEW_CASES_PER_DAY or (decision.limit and first_over_minute):
            record_limit_hit(conn, config, case_id, decision.limit, now, inbound_id)
    elif decision.limit is not None and (contact.limit_hit_at is None or first_over_minute):
        # Over a limit with no case to join: the message stays unlinked, so the number is
        # marked for the console's list of limited numbers (once per flood).
        contact_changes.update(limit_hit_at=now, limit_hit=decision.limit)
    if plan.command is not None:
        contact_changes["language"] = decision.language

    reply: str | None = None
    if template is not None and may_reply(decision, state, config):
        reply = render_reply(config, template, decision.language, tracking=number, case=summary)
        _record_reply(conn, request, decision, reply, inbound_id, contact.id, case_id, now)
        contact_changes.update(
            reply_window=_window_start(contact.reply_window, now), reply_count=replies + 1
        )
    if contact_changes:
        statements(conn).run(conn, "update_contact", {"b_id": contact.id, **contact_changes})
    return IntakeResult(
        duplicate=False,
        reply=reply,
        tracking_number=number,
        case_id=case_id,
        action=decision.action.value,
    )


def _survey_reply(
    conn: Connection,
    request: IntakeRequest,
    config: Config,
    contact: Row,
    inbound_id: int,
    now: datetime,
    *,
    surveys: SurveyHooks,
    talking: bool,
) -> IntakeResult | None:
    answer = surveys.answer_sms(
        conn,
        config,
        contact.pending_survey_id,
        contact.id,
        request.inbound.text,
        inbound_id,
        now,
        plan=request.plan,
        talking=talking,
    )
    if answer is None:
        return None
    language = config.language_or_default(contact.language)
    replies = _window_count(contact.reply_window, contact.reply_count, now)
    reply: str | None = None
    if replies < config.auto_replies_per_hour:
        reply = render_reply(config, answer.template, language, tracking=answer.tracking_number)
        decision = Decision(Action.RECORD_ONLY, language, answer.template)
        _record_reply(conn, request, decision, reply, inbound_id, contact.id, answer.case_id, now)
        statements(conn).run(
            conn,
            "update_contact",
            {
                "b_id": contact.id,
                "reply_window": _window_start(contact.reply_window, now),
                "reply_count": replies + 1,
            },
        )
    return IntakeResult(
        duplicate=False,
        reply=reply,
        tracking_number=answer.tracking_number,
        case_id=answer.case_id,
        action="survey_answer",
    )


def cases_today(contact: Row, now: datetime) -> int:
    """New cases this phone opened in its current one-day window, on any citizen channel."""
    return _window_count(contact.case_window, contact.case_count, now, DAY)


def count_new_case(contact: Row, now: datetime) -> dict[str, Any]:
    """The contact-row changes that count one more new case in the phone's one-day window
    (`[limits] new_cases_per_day`): SMS, WhatsApp, USSD and voice all count here. `contact`
    is the row the caller's upsert returned (locked until its transaction ends)."""
    return {
        "case_window": _window_start(contact.case_window, now, DAY),
        "case_count": cases_today(contact, now) + 1,
    }


def record_limit_hit(
    conn: Connection,
    config: Config,
    case_id: int,
    limit: str,
    now: datetime,
    interaction_id: int | None = None,
) -> None:
    """Put an abuse limit ([limits] key `limit`) on the case's timeline and mark the case
    for the console list."""
    add_event(
        conn,
        case_id=case_id,
        kind="limit_hit",
        at=now,
        actor="system",
        text=config.limits.describe(limit),
        interaction_id=interaction_id,
        data={"limit": limit, "max": getattr(config.limits, limit)},
    )
    statements(conn).run(conn, "mark_limit_hit", {"b_id": case_id, "b_at": now})


def _window_start(window: datetime | None, now: datetime, span: timedelta = HOUR) -> datetime:
    return window if window is not None and now - window < span else now


def _record_reply(
    conn: Connection,
    request: IntakeRequest,
    decision: Decision,
    reply: str,
    inbound_id: int,
    contact_id: int,
    case_id: int | None,
    now: datetime,
) -> None:
    """The automatic reply as `casestore.outgoing` defines an SMS to a citizen, run through
    the pre-built statements; the outbox row only when the reply is not in the HTTP answer."""
    inbound = request.inbound
    sql = statements(conn)
    sms = OutgoingSms(
        case_id=case_id,
        contact_id=contact_id,
        address=inbound.sender,
        body=reply,
        kind="reply",
        provider=inbound.provider,
        automatic=True,
        now=now,
        channel=Channel(inbound.channel),
        reply_to_id=inbound_id,
    )
    out_row = sql.run(conn, "insert_outbound", sms.interaction_row())
    assert out_row is not None
    out_id = int(out_row["id"])
    if case_id is not None:
        data = {"channel": inbound.channel, "automatic": True, "reply": decision.action.value}
        sql.run(conn, "insert_event", sms.event_row(case_id, out_id, OnTimeline(data=data)))
    if not request.reply_inline:
        sql.run(conn, "insert_outbox", sms.outbox_row(out_id))
