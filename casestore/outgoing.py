"""An SMS to a citizen: its outbound interaction, its outbox row and its timeline event.

The one definition of those rows. `queue_sms` writes them through the ORM (console, API, jobs,
menus, surveys); the intake hot path runs its pre-built Core statements with the very same
row dicts (`casestore.intake._record_reply`), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from casestore.fit import clip, column_length
from casestore.models import Case, CaseEvent, Interaction, OutboundMessage
from casestore.states import Channel, Direction, MessageStatus

ADDRESS_LENGTH = column_length(Interaction.address)


@dataclass(frozen=True)
class OnTimeline:
    """How the SMS shows on its case's timeline."""

    kind: str = "message_out"
    actor: str = "system"
    data: dict[str, Any] | None = None
    linked: bool = True  # the event names the interaction (a survey question's does not)


@dataclass(frozen=True)
class OutgoingSms:
    """An SMS about to be queued; `kind` is the outbox kind (reply, receipt, survey, …)."""

    case_id: int | None
    contact_id: int | None
    address: str
    body: str
    kind: str
    provider: str
    automatic: bool
    now: datetime
    channel: Channel = Channel.SMS  # a WhatsApp reply travels the same way
    reply_to_id: int | None = None

    def interaction_row(self) -> dict[str, Any]:
        """The outbound interaction (every column the intake's prepared statement binds)."""
        return {
            "case_id": self.case_id,
            "contact_id": self.contact_id,
            "channel": self.channel.value,
            "direction": Direction.OUT.value,
            "provider": self.provider,
            "provider_ref": None,
            "address": clip(self.address, ADDRESS_LENGTH),
            "text": self.body,
            "media_urls": None,
            "reply_to_id": self.reply_to_id,
            "automatic": self.automatic,
            "created_at": self.now,
        }

    def outbox_row(self, interaction_id: int | None) -> dict[str, Any]:
        """The outbox row the worker sends, due now."""
        return {
            "case_id": self.case_id,
            "contact_id": self.contact_id,
            "interaction_id": interaction_id,
            "kind": self.kind,
            "channel": self.channel.value,
            "provider": self.provider,
            "to_address": self.address,
            "body": self.body,
            "status": MessageStatus.PENDING.value,
            "provider_ref": None,
            "attempts": 0,
            "next_attempt_at": self.now,
            "lease_until": None,
            "created_at": self.now,
            "updated_at": self.now,
            "sent_at": None,
        }

    def event_row(self, case_id: int, interaction_id: int, event: OnTimeline) -> dict[str, Any]:
        """The timeline event on case `case_id` (every column the intake's statement binds)."""
        return {
            "case_id": case_id,
            "kind": event.kind,
            "at": self.now,
            "actor": event.actor,
            "text": self.body,
            "from_status": None,
            "to_status": None,
            "interaction_id": interaction_id if event.linked else None,
            "data": event.data,
        }


def queue_sms(
    session: Session,
    sms: OutgoingSms,
    *,
    event: OnTimeline | None = None,
    case: Case | None = None,
) -> tuple[Interaction, OutboundMessage]:
    """Queue an SMS to a citizen: its outbound interaction, the outbox row the worker sends
    and, with `event`, its timeline event (appended to `case.events` when `case` is given).

    The caller decides whether the citizen may be texted.
    """
    out = Interaction(**_given(sms.interaction_row()))
    session.add(out)
    session.flush()
    message = outbox_message(sms, out.id)
    session.add(message)
    if event is not None and sms.case_id is not None:
        row = CaseEvent(**_given(sms.event_row(sms.case_id, out.id, event)))
        if case is not None:
            case.events.append(row)  # shown on the case already loaded in this session
        else:
            session.add(row)
    return out, message


def outbox_message(sms: OutgoingSms, interaction_id: int | None = None) -> OutboundMessage:
    """The outbox row alone, for the session to add: a message to staff (an escalation to a
    supervisor) has no citizen interaction and no timeline of its own."""
    return OutboundMessage(**_given(sms.outbox_row(interaction_id)))


def _given(row: dict[str, Any]) -> dict[str, Any]:
    """The row without its None values: an ORM attribute set to None on a JSON column stores
    JSON `null`, one left unset stores SQL NULL (as these rows always have)."""
    return {key: value for key, value in row.items() if value is not None}
