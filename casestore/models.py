"""The registry's tables: contacts, cases, interactions, the timeline, the outbox, operators."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The state enums live in a leaf module (sms/ reads them); named here too, beside their columns.
from casestore.states import CallStatus as CallStatus
from casestore.states import CaseStatus as CaseStatus
from casestore.states import Channel as Channel
from casestore.states import Direction as Direction
from casestore.states import MessageStatus as MessageStatus


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


IntPK = Annotated[
    int, mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
]
Timestamp = Annotated[datetime, mapped_column(UTCDateTime())]
OptTimestamp = Annotated[datetime | None, mapped_column(UTCDateTime())]


class Role(enum.StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime()}


class Contact(Base):
    """A phone number that reached us: a contact point, not a person (phones are shared)."""

    __tablename__ = "contacts"

    id: Mapped[IntPK]
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    language: Mapped[str | None] = mapped_column(String(8))
    preferred_channel: Mapped[str] = mapped_column(String(12), default="sms")
    opted_out_at: Mapped[OptTimestamp]
    provider_opted_out_at: Mapped[OptTimestamp]
    created_at: Mapped[Timestamp]
    last_inbound_at: Mapped[OptTimestamp]
    # The case the current SMS conversation is about and when the citizen last wrote on it.
    conversation_case_id: Mapped[int | None] = mapped_column(BigInteger)
    conversation_at: Mapped[OptTimestamp]
    # Fixed one-hour windows for the auto-reply cap and the status look-up limit.
    reply_window: Mapped[OptTimestamp]
    reply_count: Mapped[int] = mapped_column(Integer, default=0)
    lookup_window: Mapped[OptTimestamp]
    lookup_count: Mapped[int] = mapped_column(Integer, default=0)
    # The survey now waiting for this phone's answer: replies go to it, never to a new case.
    pending_survey_id: Mapped[int | None] = mapped_column(BigInteger)
    # Abuse limits ([limits]): inbound SMS in a fixed one-minute window, new cases in a fixed
    # one-day window; counted on the row the intake already writes, never by COUNT(*).
    inbound_window: Mapped[OptTimestamp]
    inbound_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    case_window: Mapped[OptTimestamp]
    case_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When a message from this number last went over an abuse limit with no case to join (kept
    # unlinked), and which limit: the console's list of limited numbers shows these.
    limit_hit_at: Mapped[OptTimestamp] = mapped_column(index=True)
    limit_hit: Mapped[str | None] = mapped_column(String(40))
    # False for a landline (the number's type) or a number the provider could not text
    # (Twilio 30006, Africa's Talking UnsupportedNumberType): such a citizen hears notices by
    # a call (casestore.reach). The reason says which ("fixed_line", "twilio:30006", …).
    sms_capable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    sms_capable_reason: Mapped[str | None] = mapped_column(String(40))
    sms_capable_at: Mapped[OptTimestamp]


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_department_created", "department", "created_at"),
        Index("ix_cases_contact_status", "contact_id", "status"),
        Index("ix_cases_created_id", "created_at", "id"),
    )

    id: Mapped[IntPK]
    tracking_number: Mapped[str] = mapped_column(String(12), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    citizen_name: Mapped[str | None] = mapped_column(String(200))
    national_id: Mapped[str | None] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(12))
    category: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default=CaseStatus.NEW.value)
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
    first_response_at: Mapped[OptTimestamp]
    resolved_at: Mapped[OptTimestamp]
    closed_at: Mapped[OptTimestamp]
    # Operator in charge; SLA due time (business hours); when it was escalated; merges.
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    due_at: Mapped[OptTimestamp]
    escalated_at: Mapped[OptTimestamp]
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # When a message on this case last went over an abuse limit (marked in the console list).
    limit_hit_at: Mapped[OptTimestamp]

    contact: Mapped[Contact | None] = relationship()
    survey: Mapped[Survey | None] = relationship(back_populates="case", uselist=False)
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )


class Interaction(Base):
    """One inbound or outbound contact on any channel; unique per provider reference."""

    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref", name="uq_interactions_provider_ref"),
        Index("ix_interactions_contact_created", "contact_id", "created_at"),
    )

    id: Mapped[IntPK]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    channel: Mapped[str] = mapped_column(String(12))
    direction: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(20))
    provider_ref: Mapped[str | None] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")
    media_urls: Mapped[list[str] | None] = mapped_column(JSON)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"), index=True)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[Timestamp]


class CaseEvent(Base):
    """The case timeline: created, message in/out, status change, note."""

    __tablename__ = "case_events"

    id: Mapped[IntPK]
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[Timestamp]
    actor: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    case: Mapped[Case] = relationship(back_populates="events")


class OutboundMessage(Base):
    """The outbox: written in the transaction that caused it; a job only carries its id."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref", name="uq_outbound_messages_provider_ref"),
        Index("ix_outbound_messages_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[IntPK]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"))
    kind: Mapped[str] = mapped_column(String(20), default="reply")
    channel: Mapped[str] = mapped_column(String(12))
    provider: Mapped[str] = mapped_column(String(20))
    to_address: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.PENDING.value)
    provider_ref: Mapped[str | None] = mapped_column(String(80))
    provider_status: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Timestamp]
    lease_until: Mapped[OptTimestamp]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
    sent_at: Mapped[OptTimestamp]


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[IntPK]
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # The person's name as colleagues know them (lists show it beside the user name).
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    phone: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # available | busy | away: who can take the next call.
    availability: Mapped[str] = mapped_column(String(12), default="away", server_default="away")
    created_at: Mapped[Timestamp]

    departments: Mapped[list[OperatorDepartment]] = relationship(cascade="all, delete-orphan")

    @property
    def department_codes(self) -> set[str]:
        return {d.department for d in self.departments}

    def sees_all(self) -> bool:
        return self.role == Role.ADMIN.value


class OperatorDepartment(Base):
    __tablename__ = "operator_departments"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    department: Mapped[str] = mapped_column(String(32), primary_key=True)


class ApiToken(Base):
    """An API bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[IntPK]
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[Timestamp]
    last_used_at: Mapped[OptTimestamp]
    revoked_at: Mapped[OptTimestamp]

    operator: Mapped[Operator] = relationship()


class AuditEvent(Base):
    """Who saw or changed what, when."""

    __tablename__ = "audit_events"

    id: Mapped[IntPK]
    at: Mapped[Timestamp]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CallbackRequest(Base):
    """A citizen asked to be called back (USSD option 3, a full queue, outside hours, a
    missed call); it waits in the department's operator queue until someone calls."""

    __tablename__ = "callback_requests"
    __table_args__ = (Index("ix_callback_requests_status_due", "status", "due_at"),)

    id: Mapped[IntPK]
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    phone: Mapped[str | None] = mapped_column(String(20))
    department: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    language: Mapped[str | None] = mapped_column(String(8))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_at: Mapped[Timestamp]
    due_at: Mapped[Timestamp]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[OptTimestamp]
    outcome: Mapped[str | None] = mapped_column(String(32))


class OutboundCall(Base):
    """A call the app starts (missed-call call-back, later voice surveys): matched to the
    provider's call by `provider_ref` (Twilio CallSid, Africa's Talking sessionId)."""

    __tablename__ = "outbound_calls"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref", name="uq_outbound_calls_provider_ref"),
        Index("ix_outbound_calls_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[IntPK]
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    kind: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str] = mapped_column(String(20))
    to_address: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.PENDING.value)
    provider_ref: Mapped[str | None] = mapped_column(String(80))
    language: Mapped[str | None] = mapped_column(String(8))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Timestamp]
    lease_until: Mapped[OptTimestamp]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
    # The survey a call of kind "survey" asks (a voice survey may take more than one call).
    survey_id: Mapped[int | None] = mapped_column(ForeignKey("surveys.id"), index=True)
    # What a call of kind "notice" says (a status change for a citizen who cannot take SMS).
    message: Mapped[str | None] = mapped_column(Text)


class SurveyStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its due time (delay, quiet hours)
    ASKED = "asked"  # the rating question went out
    RATED = "rated"  # rated; the optional comment question went out
    DONE = "done"
    EXPIRED = "expired"
    SKIPPED = "skipped"  # opted out, fatigue cap, no phone to ask


class Survey(Base):
    """One satisfaction survey per closed case; due surveys are derived from these rows."""

    __tablename__ = "surveys"
    __table_args__ = (Index("ix_surveys_status_due", "status", "due_at"),)

    id: Mapped[IntPK]
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(12))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12), default=SurveyStatus.SCHEDULED.value)
    reason: Mapped[str | None] = mapped_column(String(32))
    due_at: Mapped[Timestamp]
    asked_at: Mapped[OptTimestamp]
    expires_at: Mapped[OptTimestamp]
    answered_at: Mapped[OptTimestamp]
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    clarified: Mapped[bool] = mapped_column(Boolean, default=False)
    low_score: Mapped[bool] = mapped_column(Boolean, default=False)
    followed_up_at: Mapped[OptTimestamp]
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
    # The channel first tried when the survey fell back to the other one ("sms" or "voice");
    # a survey falls back at most once.
    fallback_from: Mapped[str | None] = mapped_column(String(12))

    case: Mapped[Case] = relationship(back_populates="survey")


class ConsoleSession(Base):
    """A logged-in operator's browser session; the cookie holds a random token, we keep its hash."""

    __tablename__ = "console_sessions"

    id: Mapped[IntPK]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[Timestamp]
    last_seen_at: Mapped[Timestamp]
    expires_at: Mapped[Timestamp]
    ended_at: Mapped[OptTimestamp]

    operator: Mapped[Operator] = relationship()


class Person(Base):
    """Someone who gave their national ID: one person may use several phones."""

    __tablename__ = "people"

    id: Mapped[IntPK]
    national_id: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class PersonPhone(Base):
    """An operator linked this phone (contact point) to this person; a phone may be shared."""

    __tablename__ = "person_phones"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    linked_at: Mapped[Timestamp]
    linked_by: Mapped[str] = mapped_column(String(64))


class DeadLetter(Base):
    """A contact the provider was told we received that the database still refused to store
    (after cleaning): kept raw, for an operator to re-enter by hand and mark as handled."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_resolved_received", "resolved_at", "received_at"),)

    id: Mapped[IntPK]
    received_at: Mapped[Timestamp]
    channel: Mapped[str] = mapped_column(String(12))
    provider: Mapped[str] = mapped_column(String(20))
    route: Mapped[str] = mapped_column(String(200))
    provider_ref: Mapped[str | None] = mapped_column(String(80))
    # The department the text was classified into, when known: who may see it.
    department: Mapped[str | None] = mapped_column(String(32))
    # The fields as received, as JSON with every non-ASCII character escaped (a NUL included).
    payload: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[OptTimestamp]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
