"""Dead letters in the console: contacts the database refused, for supervisors to re-enter by
hand and mark as handled. A supervisor sees their departments' letters; a letter of unknown
department (and every letter kept in the file) only admins."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from casestore import dead_letters
from casestore.cases import audit
from casestore.models import utcnow
from gateway.console.auth import Viewer, language, login_required, render, runtime
from gateway.console.i18n import translator
from gateway.dead_letters import file_letters, resolve_file_letter
from gateway.forms import clean_text

CHANNEL_NAMES = {
    "es": {"sms": "SMS", "whatsapp": "WhatsApp", "ussd": "USSD", "voice": "Llamada"},
    "en": {"sms": "SMS", "whatsapp": "WhatsApp", "ussd": "USSD", "voice": "Call"},
}
PROVIDER_NAMES = {"twilio": "Twilio", "africastalking": "Africa's Talking", "vonage": "Vonage"}


def _shown(payload: str) -> str:
    """The received fields, readable: controls escaped, a lone surrogate as U+FFFD."""
    try:
        fields = json.loads(payload)
    except ValueError:
        return payload
    return clean_text(json.dumps(fields, ensure_ascii=False, indent=1, sort_keys=True))


def _rows(request: Request, viewer: Viewer, show_all: bool) -> list[dict[str, Any]]:
    rt = runtime(request)
    lang = language(request)
    zone = rt.config.timezone
    channels = CHANNEL_NAMES.get(lang, CHANNEL_NAMES["es"])
    rows: list[dict[str, Any]] = []
    with rt.sessions() as session, session.begin():
        for letter in dead_letters.open_letters(
            session, viewer.departments, include_resolved=show_all
        ):
            department = rt.config.departments.get(letter.department or "")
            rows.append(
                {
                    "key": f"db-{letter.id}",
                    "received": letter.received_at.astimezone(zone).strftime("%d/%m/%Y %H:%M"),
                    "channel": channels.get(letter.channel, letter.channel),
                    "provider": PROVIDER_NAMES.get(letter.provider, letter.provider),
                    "department": department.label(lang) if department else None,
                    "fields": _shown(letter.payload),
                    "error": letter.error,
                    "resolved_by": letter.resolved_by,
                }
            )
        audit(session, viewer.username, "dead_letters.view", "dead_letter", "*")
    if viewer.departments is None:  # the file's letters have no department: admins only
        for kept in file_letters(rt.config):
            if kept.resolved_by is not None and not show_all:
                continue
            rows.append(
                {
                    "key": f"file-{kept.id}",
                    "received": kept.received_at[:16].replace("T", " "),
                    "channel": channels.get(kept.channel, kept.channel),
                    "provider": PROVIDER_NAMES.get(kept.provider, kept.provider),
                    "department": None,
                    "fields": _shown(kept.payload),
                    "error": kept.error,
                    "resolved_by": kept.resolved_by,
                    "in_file": True,
                }
            )
    return rows


def _resolve(request: Request, viewer: Viewer, key: str) -> bool:
    rt = runtime(request)
    now = utcnow()
    kind, _, ident = key.partition("-")
    if kind == "file":
        if viewer.departments is not None:
            return False
        done = resolve_file_letter(rt.config, ident, viewer.username, now)
    elif kind == "db" and ident.isascii() and ident.isdigit():
        with rt.sessions() as session, session.begin():
            done = dead_letters.resolve(
                session, int(ident), viewer.username, viewer.departments, now
            )
            if done:
                audit(session, viewer.username, "dead_letters.resolve", "dead_letter", ident)
    else:
        return False
    return done


@login_required
async def dead_letters_page(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    t = translator(language(request))
    if not viewer.is_supervisor:
        return render(request, "console/error.html", {"message": t("forbidden")}, 403)
    if request.method == "POST":
        form = await request.form()
        key = str(form.get("id", ""))
        if not await run_in_threadpool(_resolve, request, viewer, key):
            return render(request, "console/error.html", {"message": t("no_letter")}, 404)
        return RedirectResponse("/console/dead-letters", status_code=303)
    show_all = request.query_params.get("all") == "1"
    rows = await run_in_threadpool(_rows, request, viewer, show_all)
    return render(request, "console/dead_letters.html", {"rows": rows, "show_all": show_all})


routes = [Route("/console/dead-letters", dead_letters_page, methods=["GET", "POST"])]
