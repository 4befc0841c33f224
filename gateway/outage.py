"""Database outages: contacts go to the local spool with a receipt, and come back in order.

While the database is unreachable (or the spool still holds contacts, so order is kept) an SMS
and a new request finished on USSD or voice are written to the spool (`gateway.spool`), the
citizen gets the usual receipt with a tracking number allocated then, and a background task
replays the spool when the database answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from casestore import menu_actions
from casestore.db import is_unreachable
from casestore.dead_letters import Letter
from casestore.inbound import Inbound, IntakeResult
from casestore.intake import IntakeRequest
from casestore.spooled import adopt_number, replay_sms
from gateway import dead_letters
from gateway.spool import Record, Spool, StopReplay
from sms.conversation import Plan, classify_sms, render_reply

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- keeping contacts


def spool_sms(rt: Runtime, request: IntakeRequest) -> IntakeResult:
    """Keep an SMS in the spool and give the answer a stored one would get (a receipt)."""
    inbound, plan, config = request.inbound, request.plan, rt.config

    def build(spool: Spool) -> Record:
        number = reply = None
        if inbound.phone is not None and plan.command is None:
            # Keywords (ESTADO, BAJA…) need the registry: they are answered after replay.
            language = config.language_or_default(plan.language)
            joined = None
            if not plan.urgent:
                window = config.conversation_window_minutes
                joined = spool.conversation(inbound.phone, inbound.received_at, window)
            number = joined or spool.allocate(config.tracking_length)
            template = "joined" if joined else "urgent" if plan.urgent else "receipt"
            reply = render_reply(config, template, language, tracking=number)
        return {
            "kind": "sms",
            "provider": inbound.provider,
            "provider_ref": inbound.provider_ref,
            "channel": inbound.channel,
            "sender": inbound.sender,
            "recipient": inbound.recipient,
            "text": inbound.text,
            "received_at": inbound.received_at.isoformat(),
            "phone": inbound.phone,
            "media_urls": list(inbound.media_urls),
            "reply_inline": request.reply_inline,
            "category": plan.category,
            "urgent": plan.urgent,
            "language": plan.language,
            "number": number,
            "reply": reply,
        }

    record = rt.spool.append(build, provider=inbound.provider, provider_ref=inbound.provider_ref)
    log.warning("database unavailable: %s SMS kept in the spool", inbound.provider)
    return IntakeResult(
        duplicate=bool(record.get("duplicate")),
        reply=record["reply"],
        tracking_number=record["number"],
        action="spooled",
    )


def spool_menu_case(rt: Runtime, request: menu_actions.KeypadRequest) -> str:
    """Keep a new request finished on USSD or voice in the spool; its tracking number."""

    def build(spool: Spool) -> Record:
        return {
            "kind": "menu",
            "provider": request.provider,
            "provider_ref": request.provider_ref,
            "channel": request.channel,
            "phone": request.phone,
            "category": request.category,
            "description": request.description,
            "recording_url": request.recording_url,
            "urgent": request.urgent,
            "language": request.language,
            "sms_provider": rt.settings.sms_provider,
            "received_at": request.now.isoformat(),
            "number": spool.allocate(rt.config.tracking_length),
        }

    record = rt.spool.append(build, provider=request.provider, provider_ref=request.provider_ref)
    log.warning("database unavailable: %s new request kept in the spool", request.channel)
    return str(record["number"])


# ---------------------------------------------------------------- replay


def hand_over_rejected(rt: Runtime, line: bytes, reason: str) -> None:
    """A spooled record that cannot be stored (bad data) was moved to the spool's
    `rejected.jsonl`; it becomes a dead letter too, so operators see it in the console."""
    log.error("spool: a record could not be replayed and was moved aside: %s", reason)
    try:
        record = json.loads(line)
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    fields = {str(k): str(v) for k, v in record.items()} or {
        "raw": line.decode("utf-8", errors="replace")
    }
    category = rt.config.categories.get(str(record.get("category", "")))
    dead_letters.keep_sync(
        rt,
        Letter(
            received_at=datetime.now(UTC),
            channel=str(record.get("channel", "?")),
            provider=str(record.get("provider", "?")),
            route="spool",
            provider_ref=None
            if record.get("provider_ref") is None
            else str(record["provider_ref"]),
            department=None if category is None else category.department,
            fields=fields,
            error=reason[:500],
        ),
    )


def _replay_record(rt: Runtime, record: Record) -> None:
    try:
        if record.get("kind") == "sms":
            _replay_sms(rt, record)
        elif record.get("kind") == "menu":
            _replay_menu(rt, record)
        else:
            raise ValueError(f"unknown spool record kind {record.get('kind')!r}")
    except DBAPIError as exc:
        if is_unreachable(exc):
            raise StopReplay from exc
        raise


def _replay_sms(rt: Runtime, record: Record) -> None:
    inbound = Inbound(
        provider=str(record["provider"]),
        provider_ref=str(record["provider_ref"]),
        channel=str(record["channel"]),
        sender=str(record["sender"]),
        recipient=str(record["recipient"]),
        text=str(record["text"]),
        received_at=datetime.fromisoformat(str(record["received_at"])),
        phone=record["phone"],
        media_urls=tuple(record.get("media_urls") or ()),
    )
    number = record.get("number")
    if number:
        plan = Plan(
            command=None,
            language=record.get("language"),
            category=str(record["category"]),
            urgent=bool(record["urgent"]),
        )
        reply_inline = bool(record["reply_inline"])
    else:
        # Not answered yet (a keyword): the usual rules, the answer through the outbox.
        plan, reply_inline = classify_sms(inbound.text, rt.config), False
    request = IntakeRequest(inbound, plan, reply_inline)
    with rt.engine.begin() as conn:
        replay_sms(
            conn,
            request,
            rt.config,
            number=number,
            reply=record.get("reply"),
            surveys=rt.surveys,
        )


def _replay_menu(rt: Runtime, record: Record) -> None:
    with rt.sessions() as session, session.begin():
        request = menu_actions.KeypadRequest(
            phone=record["phone"],
            channel=str(record["channel"]),
            provider=str(record["provider"]),
            provider_ref=str(record["provider_ref"]),
            category=str(record["category"]),
            description=str(record["description"]),
            recording_url=record.get("recording_url"),
            urgent=bool(record["urgent"]),
            language=str(record["language"]),
            now=datetime.fromisoformat(str(record["received_at"])),
        )
        opened = menu_actions.open_case_by_keypad(
            session,
            rt.config,
            request,
            sms_provider=str(record["sms_provider"]),
            number=str(record["number"]),
        )
        if opened.duplicate:  # stored as the connection broke: the screen showed the spool's
            adopt_number(
                session.connection(),
                str(record["provider"]),
                str(record["provider_ref"]),
                str(record["number"]),
            )


def database_reachable(rt: Runtime) -> bool:
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def replay_once(rt: Runtime) -> int:
    """Replay what the spool holds if the database answers; how many records were consumed."""
    if not rt.spool.has_pending() or not database_reachable(rt):
        return 0
    done = rt.spool.replay(
        lambda record: _replay_record(rt, record),
        lambda line, reason: hand_over_rejected(rt, line, reason),
    )
    if done:
        log.info("spool: %d contact(s) replayed, %d waiting", done, rt.spool.pending())
    return done


async def replay_forever(rt: Runtime, interval: float) -> None:
    """The lifespan's background task: replay at start (a restart after a crash) and then
    every `interval` seconds while anything is spooled."""
    while True:
        try:
            await run_in_threadpool(replay_once, rt)
        except Exception:  # never let the task die: the next round tries again
            log.exception("spool: replay round failed")
        await asyncio.sleep(interval)


def replay_interval(raw_config: Any) -> float:
    """`[spool] replay_seconds` (default 2)."""
    return float(raw_config.get("spool", {}).get("replay_seconds", 2))
