"""The operator console: server-rendered pages for operators and supervisors."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.console import (
    auth,
    cases,
    dead_letters,
    limited,
    live,
    operators,
    scores,
    supervision,
)

routes: list[BaseRoute] = [
    *auth.routes,
    *cases.routes,
    *supervision.routes,
    *limited.routes,
    *dead_letters.routes,
    *live.routes,
    *scores.routes,
    *operators.routes,
]
