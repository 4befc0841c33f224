"""Console satisfaction page: CSAT, mean and response rate by a dimension; low scores to follow."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from casestore.cases import audit
from feedback.scores import DIMENSIONS, follow_ups, scores
from gateway.console.auth import Viewer, login_required, render, runtime


def _scores(request: Request, viewer: Viewer, by: str) -> dict[str, Any]:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        rows = scores(session, by, departments=viewer.departments, zone=rt.config.timezone)
        low = follow_ups(session, viewer.departments)
        audit(session, viewer.username, "console.scores", "survey", "*", {"by": by})
        return {
            "by": by,
            "dimensions": DIMENSIONS,
            "rows": rows,
            "low": [
                {
                    "tracking": case.tracking_number,
                    "rating": survey.rating,
                    "comment": survey.comment,
                    "department": case.department,
                }
                for survey, case in low
            ],
        }


@login_required
async def scores_page(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    by = request.query_params.get("by", "department")
    if by not in DIMENSIONS:
        return render(
            request, "console/error.html", {"message": f"by: {', '.join(DIMENSIONS)}"}, 400
        )
    context = await run_in_threadpool(_scores, request, viewer, by)
    return render(request, "console/scores.html", context)


routes = [Route("/console/scores", scores_page, methods=["GET"])]
