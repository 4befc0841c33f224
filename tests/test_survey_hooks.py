"""casestore reaches surveys only through the hook it is given: feedback's in the app, none
otherwise."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.cases import change_status, get_case
from casestore.config import Config
from casestore.hooks import NO_SURVEYS, SurveyHooks
from casestore.models import Survey
from feedback.surveys import SURVEYS
from tests.helpers import Db
from tests.test_surveys import open_case


def _close(db_url: str, config: Config, number: str, surveys: SurveyHooks) -> int:
    """Close the case through casestore with `surveys`; how many surveys exist afterwards."""
    with Db(db_url) as db:
        with Session(db.engine) as session, session.begin():
            case = get_case(session, number, None, for_update=True)
            assert case is not None
            change_status(session, case, "closed", actor="ana", config=config, surveys=surveys)
        with Session(db.engine) as session:
            return int(session.scalar(select(func.count()).select_from(Survey)) or 0)


def test_the_app_wires_feedbacks_surveys(client: TestClient) -> None:
    assert client.app.state.runtime.surveys is SURVEYS


def test_closing_without_survey_hooks_schedules_nothing(
    client: TestClient, db_url: str, config: Config
) -> None:
    number = open_case(client)
    assert _close(db_url, config, number, NO_SURVEYS) == 0


def test_closing_with_feedbacks_hooks_schedules_the_survey(
    client: TestClient, db_url: str, config: Config
) -> None:
    number = open_case(client)
    assert _close(db_url, config, number, SURVEYS) == 1
