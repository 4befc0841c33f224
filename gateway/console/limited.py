"""The console's list of limited numbers: numbers over an abuse limit with no case, and the
messages kept from them. Those messages belong to no department yet, so supervisors and
admins see them (as they triage); an operator sees flooded cases on the case list (LÍMITE)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from casestore.cases import audit
from casestore.limited import limited_numbers, mark_reviewed
from gateway.console.auth import Viewer, login_required, render, runtime
from gateway.console.i18n import translator
from gateway.forms import BadRequest, form_id


def _page(request: Request, viewer: Viewer) -> dict[str, Any]:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        numbers = limited_numbers(session)
        audit(session, viewer.username, "console.limited_numbers", "contact", "*")
    return {"numbers": numbers, "tz": rt.config.timezone, "maxima": asdict(rt.config.limits)}


def _review(request: Request, viewer: Viewer, contact_id: int) -> bool:
    with runtime(request).sessions() as session, session.begin():
        phone = mark_reviewed(session, contact_id)
        if phone is None:
            return False
        audit(session, viewer.username, "console.limited_reviewed", "contact", str(contact_id))
        return True


@login_required
async def limited_page(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    t = translator(request.cookies.get("ventanilla_lang", "es"))
    if not viewer.is_supervisor:
        return render(request, "console/error.html", {"message": t("forbidden")}, 403)
    error = None
    if request.method == "POST":
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            contact_id = form_id(form, "id")
        except BadRequest as exc:
            error = exc.reason
        else:
            if await run_in_threadpool(_review, request, viewer, contact_id):
                return RedirectResponse("/console/limited", status_code=303)
            error = t("limited_gone")
    context = await run_in_threadpool(_page, request, viewer)
    return render(
        request, "console/limited.html", {**context, "error": error}, 400 if error else 200
    )


routes = [Route("/console/limited", limited_page, methods=["GET", "POST"])]
