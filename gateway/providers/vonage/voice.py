"""Vonage Voice API: the shared menu as NCCO (talk + input), call steps and events parsed.

Webhooks the app hands to Vonage, all signed (see auth.py):

    GET|POST /webhooks/vonage/voice/answer    the number's answer URL: step 0 (query or JSON)
    POST /webhooks/vonage/voice/step?step=N&call=UUID[&p=PHONE][&rec=1]
                                              an input's eventUrl (dtmf), or a record's
    POST /webhooks/vonage/voice/event         call events (started … completed)

A record action is asynchronous at Vonage: its eventUrl is called once the recording is ready,
and its answer is not read. So a recording screen keeps the caller waiting, and the step that
receives the recording pushes the next NCCO to the live call (PUT /v1/calls/{uuid}, transfer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from vonage_voice.models import Dtmf, Input, Record, Talk, Wait

from gateway.forms import BadRequest
from gateway.providers.base import Answer, CallEvent, CallStep, WebhookRequest
from gateway.providers.vonage.auth import verify_webhook
from gateway.providers.vonage.client import VonageApi, api_from_env
from gateway.providers.vonage.sms import PROVIDER, e164, json_body
from ivr.machine import Expect, Screen
from ivr.menu import Menu
from ivr.speech import speech, spoken_options, voice_table
from sms.phone import PhoneError, sender_phone

NCCO = "application/json"
MAX_STEP = 10_000
CHOICE_TIMEOUT = 6  # seconds without a key before the input is submitted
DIGITS_TIMEOUT = 10  # Vonage's maximum
RECORD_SILENCE = 3
# Vonage call statuses (event webhook) by what they mean for a call of ours.
ANSWERED = frozenset({"answered"})
UNANSWERED = frozenset({"busy", "unanswered", "timeout", "rejected", "cancelled"})
FAILED = frozenset({"failed"})
ENDED = frozenset({"completed"}) | UNANSWERED | FAILED
PROGRESS = frozenset({"started", "ringing", "machine", "human", "input", "transfer"})
STATUSES = ANSWERED | ENDED | PROGRESS


def _talk(menu: Menu, text: str, language: str, *, barge_in: bool = False) -> dict[str, Any]:
    settings = voice_table(menu.config, language)
    talk = Talk(
        text=text,
        language=str(settings.get("language") or "") or None,
        bargeIn=barge_in or None,
    )
    action: dict[str, Any] = talk.model_dump(mode="json", by_alias=True, exclude_none=True)
    return action


def _dump(*actions: Any) -> Answer:
    ncco = [
        a if isinstance(a, dict) else a.model_dump(mode="json", by_alias=True, exclude_none=True)
        for a in actions
    ]
    return Answer(json.dumps(ncco), NCCO)


def _caller_phone(raw: str, country: str) -> str | None:
    try:
        return sender_phone(e164(raw), country)
    except PhoneError:
        return None  # withheld or not a phone: the call still gets the menu


class VonageVoice:
    """The shared menu over the Voice API (see the module's docstring for the URLs)."""

    answer_path: ClassVar[str] = "/webhooks/vonage/voice/answer"
    step_path: ClassVar[str] = "/webhooks/vonage/voice/step"
    event_path: ClassVar[str] = "/webhooks/vonage/voice/event"
    name = PROVIDER

    def __init__(self, env: Mapping[str, str]) -> None:
        self._secret = env.get("VONAGE_SIGNATURE_SECRET") or None
        self._number = e164(env.get("VONAGE_FROM_NUMBER", ""))
        self._env = {k: v for k, v in env.items() if k.startswith("VONAGE_")}
        self._api: VonageApi | None = None

    def verify(self, request: WebhookRequest) -> None:
        verify_webhook(self._secret, request.headers.get("authorization"), request.raw_body)

    def _fields(self, request: WebhookRequest) -> Mapping[str, Any]:
        """The answer URL comes as a GET query (Vonage's default) or a JSON POST."""
        return json_body(request.body) if request.body.strip() else request.query

    def _citizen(self, data: Mapping[str, Any], country: str) -> str | None:
        """The caller; on a call we placed (from = our number), the callee."""
        sender, callee = str(data.get("from") or ""), str(data.get("to") or "")
        raw = callee if self._number and e164(sender) == self._number else sender
        return _caller_phone(raw, country) if raw else None

    def parse_step(self, request: WebhookRequest, country: str) -> CallStep:
        query = request.query
        raw_step = query.get("step")
        if raw_step is None:  # the answer URL
            data = self._fields(request)
            uuid = str(data.get("uuid") or "").strip()
            if not uuid:
                raise BadRequest("missing field: uuid")
            return CallStep(call_id=uuid, step=0, phone=self._citizen(data, country), digits=None)
        if not (raw_step.isascii() and raw_step.isdigit()) or not 1 <= int(raw_step) <= MAX_STEP:
            raise BadRequest("bad step")
        data = json_body(request.body)
        call_id = query.get("call", "").strip()
        if not call_id:
            raise BadRequest("missing call")
        # The phone the app put in its own URL (a record event does not carry the caller).
        phone = _caller_phone(query["p"], country) if query.get("p") else None
        if query.get("rec") == "1":  # a record's event: the recording, nothing else
            url = str(data.get("recording_url") or "").strip()
            return CallStep(
                call_id=call_id,
                step=int(raw_step),
                phone=phone,
                digits=None,
                recording_url=url if url.startswith(("https://", "http://")) else "",
                pushed=True,
            )
        dtmf = data.get("dtmf")
        digits = dtmf.get("digits") if isinstance(dtmf, dict) else None
        if digits is not None and not isinstance(digits, str):
            raise BadRequest("dtmf.digits must be a string")
        return CallStep(
            call_id=call_id,
            step=int(raw_step),
            phone=phone,
            digits=(digits or "").strip()[:32],
        )

    def parse_event(self, request: WebhookRequest) -> CallEvent:
        data = json_body(request.body)
        uuid = str(data.get("uuid") or "").strip()
        if not uuid:
            raise BadRequest("missing field: uuid")
        status = str(data.get("status") or "").strip().lower()
        if status not in STATUSES:
            allowed = ", ".join(sorted(STATUSES))
            raise BadRequest(f"unknown status {status!r}; expected one of {allowed}")
        return CallEvent(
            call_id=uuid,
            status=status,
            answered=status in ANSWERED,
            ended=status in ENDED,
            failed=status in FAILED,
        )

    def render_screen(self, menu: Menu, screen: Screen, next_url: str) -> Answer:
        lang = screen.state.language
        if screen.end or screen.expect == Expect.NOTHING:
            return _dump(_talk(menu, screen.text, lang))
        if screen.expect == Expect.RECORDING:
            limit = int(menu.config.raw.get("ivr", {}).get("recording_max_seconds", 120))
            record = Record(
                endOnKey="#",
                endOnSilence=RECORD_SILENCE,
                timeOut=max(3, limit),
                beepStart=True,
                eventUrl=[next_url + "&rec=1"],
                eventMethod="POST",
            )
            # The record runs beside what follows; the wait holds the call until the next
            # NCCO is pushed (see the module's docstring), then ends it if none comes.
            wait = Wait(timeout=float(limit + 15))
            return _dump(_talk(menu, screen.text, lang), record, wait)
        if screen.expect == Expect.DIGITS:
            dtmf = Dtmf(
                maxDigits=screen.digits or menu.config.tracking_length,
                submitOnHash=True,
                timeOut=DIGITS_TIMEOUT,
            )
            text = screen.text
        else:
            pair = any(len(key) > 1 for key, _ in screen.options)
            dtmf = Dtmf(
                maxDigits=2 if pair else 1, submitOnHash=pair or None, timeOut=CHOICE_TIMEOUT
            )
            text = " ".join(
                part for part in (screen.text, spoken_options(menu.config, screen)) if part
            )
        prompt = _talk(menu, text, lang, barge_in=True)
        return _dump(
            prompt, Input(type=["dtmf"], dtmf=dtmf, eventUrl=[next_url], eventMethod="POST")
        )

    def render_goodbye(self, menu: Menu, text: str, language: str) -> Answer:
        return _dump(_talk(menu, text, language))

    def render_sorry(self, menu: Menu, language: str) -> Answer:
        return self.render_goodbye(menu, speech(menu.config, language, "sorry"), language)

    def push(self, call_id: str, answer: Answer) -> None:
        """Transfer the live call to `answer`'s NCCO (PUT /v1/calls/{uuid})."""
        if self._api is None:
            self._api = api_from_env(self._env, 10.0, "control calls")
        body = {
            "action": "transfer",
            "destination": {"type": "ncco", "ncco": json.loads(answer.body)},
        }
        self._api.put(f"/v1/calls/{call_id}", body, jwt_only=True)
