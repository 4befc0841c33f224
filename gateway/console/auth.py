"""Console log-in: argon2 passwords, server-side sessions, CSRF tokens, back-off on failures."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from casestore.cases import audit
from casestore.models import Operator
from casestore.operators import (
    console_session_for,
    end_console_session,
    operator_departments,
    start_console_session,
    verify_password,
)
from gateway.console.i18n import translator
from gateway.forms import BadRequest, read_form
from gateway.runtime import Runtime

COOKIE = "ventanilla_session"
LANG_COOKIE = "ventanilla_lang"
templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))


@dataclass(frozen=True)
class Viewer:
    """The logged-in operator, as the pages need it."""

    operator_id: int
    username: str
    role: str
    departments: frozenset[str] | None  # None: every department (admin)
    csrf_token: str
    availability: str = "away"

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    return (
        lang
        if lang in runtime(request).config.languages
        else runtime(request).config.default_language
    )


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """A console page with the viewer, language and translator in its context."""
    lang = language(request)
    base = {"lang": lang, "t": translator(lang), "viewer": getattr(request.state, "viewer", None)}
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
    response.headers["Cache-Control"] = "no-store"  # pages carry personal data
    return response


def load_viewer(rt: Runtime, token: str) -> Viewer | None:
    with rt.sessions() as session, session.begin():
        row = console_session_for(session, token)
        if row is None:
            return None
        operator = row.operator
        departments = operator_departments(operator)
        return Viewer(
            operator_id=operator.id,
            username=operator.username,
            role=operator.role,
            departments=frozenset(departments) if departments is not None else None,
            csrf_token=row.csrf_token,
            availability=operator.availability,
        )


Endpoint = Callable[[Request], Awaitable[Response]]


def login_required(endpoint: Endpoint) -> Endpoint:
    """Redirect to the log-in page without a live session; check CSRF on every POST."""

    @wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        token = request.cookies.get(COOKIE)
        viewer = await run_in_threadpool(load_viewer, runtime(request), token) if token else None
        if viewer is None:
            return RedirectResponse(f"/console/login?next={request.url.path}", status_code=303)
        request.state.viewer = viewer
        if request.method == "POST":
            form = await request.form()
            given = str(form.get("csrf_token", "")) or request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(given.encode(), viewer.csrf_token.encode()):
                t = translator(language(request))
                return render(request, "console/error.html", {"message": t("csrf")}, 403)
        return await endpoint(request)

    return wrapper


def client_address(request: Request) -> str:
    """The peer address as the server saw it (uvicorn rewrites it from trusted proxies only)."""
    return request.client.host if request.client is not None else "unknown"


def _fail_keys(rt: Runtime, address: str, username: str) -> tuple[str, str]:
    """The Redis counters of log-in failures: per (address, user name) and per address."""
    # Distinct prefixes: an IPv6 address has colons, so no user key may spell an address key.
    family = rt.redis_keys.login_fail
    return (f"{family}user:{address}|{username.lower()}", f"{family}addr:{address}")


def _locked(rt: Runtime, address: str, username: str) -> bool:
    limits = rt.config.login
    per_user, per_address = rt.redis.mget(_fail_keys(rt, address, username))
    return int(per_user or 0) >= limits.failures_per_user_address or (
        int(per_address or 0) >= limits.failures_per_address
    )


def _record_failure(rt: Runtime, address: str, username: str) -> None:
    seconds = rt.config.login.lock_minutes * 60
    pipe = rt.redis.pipeline()
    for key in _fail_keys(rt, address, username):
        pipe.set(key, 0, ex=seconds, nx=True)  # the window opens with the first failure
        pipe.incr(key)
    pipe.execute()


def _forget_failures(rt: Runtime, address: str, username: str) -> None:
    # Only this user's count from this address: a good log-in must not clear the address's
    # count, or one valid account would let an address guess at every other one.
    rt.redis.delete(_fail_keys(rt, address, username)[0])


def _try_login(rt: Runtime, username: str, password: str) -> str | None:
    with rt.sessions() as session, session.begin():
        operator = session.scalar(select(Operator).where(Operator.username == username))
        if operator is None or not verify_password(session, operator, password):
            audit(session, username or "?", "console.login_failed", "operator", username or "?")
            return None
        token, _ = start_console_session(session, operator)
        audit(session, operator.username, "console.login", "operator", operator.username)
        return token


async def login(request: Request) -> Response:
    rt = runtime(request)
    t = translator(language(request))
    next_path = same_origin_path(request, request.query_params.get("next", ""))
    if request.method == "GET":
        return render(request, "console/login.html", {"error": None, "next": next_path})
    try:
        form = await read_form(request)
    except BadRequest as exc:
        return render(request, "console/login.html", {"error": exc.reason, "next": next_path}, 400)
    username = form.get("username", "").strip()
    password = form.get("password", "")
    address = client_address(request)
    if await run_in_threadpool(_locked, rt, address, username):
        message = t("locked", minutes=str(rt.config.login.lock_minutes))
        return render(request, "console/login.html", {"error": message, "next": next_path}, 429)
    token = await run_in_threadpool(_try_login, rt, username, password)
    if token is None:
        await run_in_threadpool(_record_failure, rt, address, username)
        return render(
            request, "console/login.html", {"error": t("bad_login"), "next": next_path}, 401
        )
    await run_in_threadpool(_forget_failures, rt, address, username)
    response = RedirectResponse(next_path, status_code=303)
    secure = rt.settings.public_url.startswith("https://")
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
    return response


@login_required
async def logout(request: Request) -> Response:
    rt = runtime(request)
    token = request.cookies.get(COOKIE, "")

    def work() -> None:
        with rt.sessions() as session, session.begin():
            end_console_session(session, token)

    await run_in_threadpool(work)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def same_origin_path(request: Request, url: str, default: str = "/console") -> str:
    """`url` as a path under /console on this site (absolute only with this site's origin:
    the request's or the public URL's), or `default`: never a redirect to another site."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        public = urlsplit(runtime(request).settings.public_url)
        origins = {(request.url.scheme, request.url.netloc), (public.scheme, public.netloc)}
        if (parts.scheme, parts.netloc) not in origins:
            return default
    path = parts.path
    # A backslash or a control character can make a browser read another host.
    if (
        not (path == "/console" or path.startswith("/console/"))
        or "\\" in url
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url)
    ):
        return default
    return path + (f"?{parts.query}" if parts.query else "")


async def switch_language(request: Request) -> Response:
    languages = runtime(request).config.languages
    current = language(request)
    following = languages[(languages.index(current) + 1) % len(languages)]
    response = RedirectResponse(
        same_origin_path(request, request.headers.get("referer", "")), status_code=303
    )
    response.set_cookie(LANG_COOKIE, following, samesite="lax", path="/")
    return response


routes = [
    Route("/console/login", login, methods=["GET", "POST"]),
    Route("/console/logout", logout, methods=["POST"]),
    Route("/console/language", switch_language, methods=["GET"]),
]
