"""Who may use the simulator: it writes cases and shows any phone's conversation, so only
someone at the machine itself (`make run` on loopback) or a logged-in console operator."""

from __future__ import annotations

import ipaddress

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.console.auth import COOKIE, load_viewer
from gateway.runtime import Runtime

# Headers a reverse proxy adds: a request carrying one came from elsewhere, whatever the peer.
PROXY_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "true-client-ip",
)


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def from_this_machine(request: Request, bind_host: str) -> bool:
    """Served on loopback only, asked from loopback, and not passed on by a proxy."""
    peer = request.client.host if request.client is not None else None
    return (
        is_loopback(bind_host)
        and is_loopback(peer)
        and not any(name in request.headers for name in PROXY_HEADERS)
    )


async def refuse(request: Request) -> Response | None:
    """None when this request may use the simulator, else the answer to give (404 when it is
    off, 403 when it is on but the request is neither local nor a logged-in operator's)."""
    rt: Runtime = request.app.state.runtime
    if not rt.settings.simulator_enabled:
        return PlainTextResponse(
            "the simulator is off (it runs only with the outbox provider for SMS and voice)", 404
        )
    if from_this_machine(request, rt.settings.bind_host):
        return None
    token = request.cookies.get(COOKIE)
    if token and await run_in_threadpool(load_viewer, rt, token) is not None:
        return None
    return PlainTextResponse(
        "the simulator answers only on this machine (a loopback address) or to an operator "
        "logged in at /console/login",
        403,
    )
