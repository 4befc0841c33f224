"""What casestore asks of the layer above it, as a small typed interface.

Closing a case schedules a satisfaction survey, an SMS may answer one, and BAJA drops the
phone's pending ones. Surveys live in `feedback`, which builds on casestore, so casestore only
names what it needs here; feedback implements it and whoever builds the runtime (gateway, CLI,
worker) passes that implementation down explicitly. `NO_SURVEYS` has no side effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from casestore.config import Config
from casestore.models import Case
from sms.conversation import Plan


@dataclass(frozen=True)
class SurveyReply:
    """What intake should answer to a reply that went to a pending survey."""

    template: str
    tracking_number: str
    case_id: int


class SurveyHooks(Protocol):
    """The survey side effects of intake and of closing a case."""

    def schedule(self, session: Session, case: Case, config: Config, now: datetime) -> None:
        """A case was just closed: schedule its survey, if the config asks for one."""
        ...

    def answer_sms(
        self,
        conn: Connection,
        config: Config,
        survey_id: int | None,
        contact_id: int,
        text: str,
        inbound_id: int,
        now: datetime,
        *,
        plan: Plan,
        talking: bool,
    ) -> SurveyReply | None:
        """Apply an SMS to the contact's survey; None when it is not an answer."""
        ...

    def opt_out(self, conn: Connection, contact_id: int, now: datetime) -> None:
        """BAJA/STOP: drop this contact's pending and scheduled surveys."""
        ...


class NoSurveys:
    """No surveys at all: nothing is scheduled, no SMS answers one, nothing to drop."""

    def schedule(self, session: Session, case: Case, config: Config, now: datetime) -> None:
        return None

    def answer_sms(
        self,
        conn: Connection,
        config: Config,
        survey_id: int | None,
        contact_id: int,
        text: str,
        inbound_id: int,
        now: datetime,
        *,
        plan: Plan,
        talking: bool,
    ) -> SurveyReply | None:
        return None

    def opt_out(self, conn: Connection, contact_id: int, now: datetime) -> None:
        return None


NO_SURVEYS: SurveyHooks = NoSurveys()
