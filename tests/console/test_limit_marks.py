"""Operators see abuse limits: a marker in the case list, the event on the case page."""

from __future__ import annotations

import re
from collections.abc import Callable

from casestore.config import Limits
from tests.conftest import Client
from tests.console.conftest import log_in
from tests.helpers import Db, post_twilio, twilio_form

PHONE = "+5491155550301"


def test_console_marks_cases_that_hit_a_limit(
    client_with: Client, db_url: str, add_operator: Callable[..., str]
) -> None:
    client = client_with(Limits(sms_per_minute=1, new_cases_per_day=0))
    for text in ("Necesito mercaderia", "otra vez", "y otra"):
        post_twilio(client, twilio_form(text, sender=PHONE))
    post_twilio(client, twilio_form("Necesito chapas", sender="+5491155550302"))
    log_in(client, add_operator("opalim", departments=("ALIM", "HAB")))
    listing = client.get("/console").text
    rows = {
        row.count("LÍMITE"): row
        for row in re.findall(r"<tr>.*?</tr>", listing, re.S)
        if "/console/cases/" in row
    }
    assert set(rows) == {0, 1}  # one case marked, the other not
    with Db(db_url) as db:
        marked = next(c for c in db.cases() if c.limit_hit_at is not None)
    page = client.get(f"/console/cases/{marked.tracking_number}").text
    assert "Límite de abuso alcanzado" in page and "over 1 SMS per minute" in page
    assert "otra vez" in page and "y otra" in page  # the kept messages, on the timeline
