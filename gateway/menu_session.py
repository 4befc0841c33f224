"""Runs the voice/USSD menu for the routes: session state in Redis, actions on the registry.

Routes parse the provider's request, call `advance`, and render the returned Screen. Session
state lives in Redis with a TTL (an expired session starts over cleanly); answers are cached
per provider step so a redelivered request gets the same answer and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from casestore import menu_actions
from casestore.db import is_unreachable
from gateway import outage
from gateway.menu_store import SessionStore
from ivr.hours import is_open
from ivr.machine import Action, Context, Outcome, Screen, State, resume, start, step
from ivr.menu import Menu

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """One request of a menu session, as a route saw it."""

    channel: str  # ussd | voice
    provider: str
    session_id: str  # AT sessionId, Twilio CallSid
    step_ref: str  # unique per step within the session: used as the provider reference
    phone: str | None  # E.164, None when withheld
    value: str | None  # the input; None on the first request of a session
    language: str | None = None  # a known preference (a call-back to a contact), else default


def operators_open(menu: Menu, now: datetime) -> bool:
    operators = menu.config.raw.get("operators", {})
    holidays = [date.fromisoformat(str(d)) for d in operators.get("holidays", [])]
    return is_open(operators.get("hours", "always"), now.astimezone(menu.config.timezone), holidays)


# Nodes where a USSD session the network dropped can be resumed by the phone's next dial.
RESUMABLE_NODES = ("describe", "confirm")


def session_key(provider: str, session_id: str) -> str:
    """The key a menu session is kept under in the SessionStore."""
    return f"{provider}:{session_id}"


async def advance(rt: Runtime, menu: Menu, store: SessionStore, call: Call) -> Screen:
    """Load the session, apply the input, perform any action, save, return the screen."""
    key = session_key(call.provider, call.session_id)
    state = store.load(key)
    if state is None or call.value is None:
        resumable = None
        if call.channel == "ussd" and call.phone:
            resumable = store.take_resumable(call.phone)
        screen = start(menu, call.channel, call.language, resumable)
        if call.value is not None and state is None and call.channel == "voice":
            # A voice step whose session expired: start over cleanly.
            log.info("menu session %s expired; starting over", call.provider)
        screen = await settle(rt, menu, call, screen, datetime.now(UTC))
    else:
        screen = await run_step(rt, menu, call, state)
    keep(store, key, call, screen)
    return screen


async def run_step(rt: Runtime, menu: Menu, call: Call, state: State) -> Screen:
    """Apply the call's input to `state` and perform what the menu asks (all but enqueue)."""
    now = datetime.now(UTC)
    context = Context(operators_available=operators_open(menu, now))
    if call.channel == "voice" and state.node == "main" and call.value == "2":
        latest = await run_in_threadpool(_latest, rt, call.phone)
        context = replace(context, latest_open_case=latest)
    return await settle(rt, menu, call, step(menu, state, call.value, context), now)


async def settle(rt: Runtime, menu: Menu, call: Call, screen: Screen, now: datetime) -> Screen:
    """Perform the actions the screen asks for (in a thread), up to one the caller waits in."""
    while screen.action is not None and screen.action.kind != "enqueue":
        action = screen.action
        outcome = await run_in_threadpool(perform, rt, menu, call, screen.state, action, now)
        screen = resume(menu, screen.state, action, outcome)
    return screen


def keep(store: SessionStore, key: str, call: Call, screen: Screen) -> None:
    """Save the session as `screen` leaves it (dropped once it ended); on USSD also keep a
    new request the citizen may resume after a dropped session, or forget it once done."""
    if screen.end:
        store.drop(key)
    else:
        store.save(key, screen.state)
    if call.channel == "ussd" and call.phone:
        if not screen.end and screen.state.node in RESUMABLE_NODES:
            store.keep_resumable(call.phone, screen.state)
        elif screen.end:
            store.forget_resumable(call.phone)


def _latest(rt: Runtime, phone: str | None) -> str | None:
    with rt.sessions() as session:
        return menu_actions.latest_open_case(session, phone)


def perform(
    rt: Runtime, menu: Menu, call: Call, state: State, action: Action, now: datetime
) -> Outcome:
    """Do what the menu asked, in one transaction."""
    if action.kind == "create_case":
        return Outcome(tracking=_create_case(rt, menu, call, state, action, now))
    with rt.sessions() as session, session.begin():
        if action.kind == "case_status":
            found = menu_actions.case_status(session, action.tracking or "")
            if found is None:
                return Outcome(ok=False)
            return Outcome(
                tracking=found.tracking_number, status=found.status, department=found.department
            )
        if action.kind == "callback":
            menu_actions.request_callback(
                session,
                phone=call.phone,
                department=action.department or menu.operator_department,
                channel=call.channel,
                reason="queue" if state.phase == "queue" else "menu",
                language=state.language,
                now=now,
                urgent=action.urgent,
            )
            return Outcome()
    raise ValueError(f"unknown menu action {action.kind!r}")


def _create_case(
    rt: Runtime, menu: Menu, call: Call, state: State, action: Action, now: datetime
) -> str:
    """Open the case the citizen finished describing; its tracking number. While the
    database is unreachable (or the spool still holds contacts) the request is spooled."""
    request = menu_actions.KeypadRequest(
        phone=call.phone,
        channel=call.channel,
        provider=call.provider,
        provider_ref=f"{call.session_id}:{call.step_ref}",
        category=action.category or menu.config.triage_category,
        description=action.description,
        recording_url=action.recording_url,
        urgent=action.urgent,
        language=state.language,
        now=now,
    )
    if not rt.spool.has_pending():
        try:
            with rt.sessions() as session, session.begin():
                opened = menu_actions.open_case_by_keypad(
                    session, menu.config, request, sms_provider=rt.settings.sms_provider
                )
            return opened.tracking_number
        except DBAPIError as exc:
            if not is_unreachable(exc):
                raise
    return outage.spool_menu_case(rt, request)
