"""The Starlette application: webhooks, API, simulator and health, assembled in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from casestore.config import Config, load_config
from casestore.db import is_refused_input, is_unreachable
from feedback.surveys import SURVEYS
from gateway import console, outage
from gateway.clean_input import CleanInputMiddleware
from gateway.routes import (
    api,
    missed_call,
    openapi,
    operator_leg,
    ussd,
    voice_africastalking,
    voice_menu,
    voice_notice,
    voice_survey,
    voice_twilio,
    webhooks,
)
from gateway.runtime import Runtime, build_runtime
from gateway.settings import Settings, load_settings
from gateway.simulators import access as simulator_access
from gateway.simulators import calls as simulator_calls
from gateway.simulators import sms as simulator
from gateway.simulators import voice as simulator_voice

log = logging.getLogger(__name__)


def _check_database(rt: Runtime) -> str:
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _check_redis(rt: Runtime) -> str:
    try:
        rt.redis.ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


async def healthz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    database = await run_in_threadpool(_check_database, rt)
    redis_state = await run_in_threadpool(_check_redis, rt)
    spooled = await run_in_threadpool(rt.spool.pending)
    healthy = database == "ok" and redis_state == "ok"
    # Contacts waiting in the spool: still serving (and accepting contacts), not yet all stored.
    status = "ok" if healthy and not spooled else "degraded"
    return JSONResponse(
        {"status": status, "database": database, "redis": redis_state, "spooled": spooled},
        status_code=200 if healthy else 503,
    )


async def home(request: Request) -> Response:
    if await simulator_access.refuse(request) is None:
        return RedirectResponse("/simulator", status_code=302)
    return JSONResponse({"service": "ventanilla", "health": "/healthz"})


REFUSED = "the request holds a value the registry cannot store"
REFUSED_ES = "La solicitud tiene un valor que el registro no puede guardar. Revise lo escrito."


async def database_error(request: Request, exc: Exception) -> Response:
    """503 only when the database cannot be reached; a value it refused is the client's 400."""
    if is_unreachable(exc):
        log.error("database unavailable: %s", type(exc).__name__)
        return JSONResponse({"error": "database unavailable"}, status_code=503)
    if is_refused_input(exc):
        log.warning("database refused a value: %s", type(exc).__name__)
        if request.url.path.startswith("/console"):
            return PlainTextResponse(REFUSED_ES, status_code=400)
        return JSONResponse({"error": REFUSED}, status_code=400)
    raise exc


def create_app(settings: Settings | None = None, config: Config | None = None) -> Starlette:
    """Build the app; settings and config default to the environment and the shipped TOML."""
    settings = settings or load_settings()
    config = config or load_config(env=settings.env)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = build_runtime(settings, config, surveys=SURVEYS)  # feedback runs the surveys
        app.state.runtime = rt
        rt.intake.start()
        replayer = asyncio.create_task(
            outage.replay_forever(rt, outage.replay_interval(config.raw))
        )
        try:
            yield
        finally:
            replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replayer
            rt.close()

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        *webhooks.routes,
        *ussd.routes,
        *voice_twilio.routes,
        *voice_africastalking.routes,
        *voice_menu.routes,
        *voice_survey.routes,
        *voice_notice.routes,
        *missed_call.routes,
        *operator_leg.routes,
        *openapi.routes,
        *api.routes,
        *console.routes,
        *simulator.routes,
        *simulator_calls.routes,
        *simulator_voice.routes,
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={DBAPIError: database_error},
        middleware=[Middleware(CleanInputMiddleware)],
    )
