"""What every provider offers the rest of the gateway: small typed interfaces and their results.

A provider package (`gateway/providers/<name>/`) implements the parts it has: an `SmsSender`
for outbound messages, a `Caller` for outbound calls, `SmsWebhooks` for inbound messages and
a `VoiceMenu` for the shared IVR. Every failure to send or call is a
`SendError` saying whether a retry can help; secrets never appear in its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from casestore.inbound import Inbound, StatusUpdate
from gateway.forms import parse_form
from ivr.machine import Screen
from ivr.menu import Menu


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message."""

    provider_ref: str  # Twilio Message sid / Africa's Talking messageId / outbox id
    status: str  # the provider's status word as returned ("queued", "Success", "recorded")


class SendError(Exception):
    """The provider did not accept the message; `retryable` says whether trying again can help."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        code: str | None = None,
        opted_out: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.code = code
        self.opted_out = opted_out

    def __repr__(self) -> str:
        return (
            f"SendError({self.reason!r}, retryable={self.retryable}, code={self.code!r}, "
            f"opted_out={self.opted_out})"
        )


class CannotReconcile(Exception):
    """The provider offers no way to ask whether a message was already sent."""


class SmsSender(Protocol):
    """Sends one SMS (or WhatsApp message, where the provider supports it)."""

    name: str

    @property
    def sender_key(self) -> str:
        """Who the provider counts a send against (provider + from number): the rate limit's key."""
        ...

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult: ...

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        """`send_sms` on the running event loop, on a connection pool shared by its calls."""
        ...

    async def aclose(self) -> None:
        """Close the async connection pool (on the loop that used it)."""
        ...

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """The provider's id of this message if it was already sent; CannotReconcile if the
        provider cannot be asked."""
        ...


@dataclass(frozen=True)
class CallResult:
    """The provider accepted the call and is dialling (or the outbox recorded it)."""

    provider_ref: str  # Twilio CallSid / Africa's Talking sessionId / outbox id
    status: str  # the provider's word: "queued", "Queued", "recorded"


class Caller(Protocol):
    """Places one outbound call whose flow is the app's voice menu."""

    name: str

    def place_call(self, to: str, *, url: str | None, status_callback: str | None) -> CallResult:
        """Dial `to`; `url` is where Twilio fetches the call's first instructions."""
        ...

    def find_placed(self, to: str, since: datetime) -> str | None:
        """The provider's reference of a call we placed to `to` since `since`, if any;
        CannotReconcile if the provider cannot be asked."""
        ...


class Recordings(Protocol):
    """Call recordings a provider keeps for the account: found per call, deleted on erasure.
    Failures are `SendError`s, as for sending."""

    def of_call(self, call_ref: str) -> list[str]:
        """The provider's references of the recordings of one call."""
        ...

    def delete(self, recording_ref: str) -> None:
        """Delete one recording; one already gone is not an error."""
        ...


class RecordingsApi(Protocol):
    """A provider's recordings client class: which recordings are its own, and how to build it."""

    host: str  # part of every URL of its recordings ("twilio.com")

    def from_env(self, env: Mapping[str, str]) -> Recordings | None:
        """The client of the deployment's account, or None when no account is configured."""
        ...

    def ref_of(self, url: str) -> str | None:
        """The recording's reference in one of its URLs, if the URL names one."""
        ...


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's webhook as the route read it, before anything in it is trusted."""

    url: str  # the public URL the provider called (VENTANILLA_PUBLIC_URL + path + raw query)
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]  # cleaned
    body: bytes  # cleaned (see gateway.clean_input): what is parsed and stored
    raw_body: bytes  # as received: what a signature covers

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    def form(self) -> dict[str, str]:
        """The urlencoded fields, cleaned; 400 for any other body."""
        return parse_form(self.body, self.headers.get("content-type"))

    def signed_form(self) -> dict[str, str]:
        """The urlencoded fields as received (blank ones too), for a signature over them."""
        return parse_form(self.raw_body, self.headers.get("content-type"))

    def received_fields(self) -> dict[str, str]:
        """What was received, for a dead letter: the fields of a form, else the body's text."""
        if self.content_type == "application/x-www-form-urlencoded":
            return self.signed_form()
        return {"body": self.raw_body.decode("utf-8", "replace")}


@dataclass(frozen=True)
class Answer:
    """What a route answers the provider: a body and its media type."""

    body: str
    media_type: str = "text/plain"


class SmsWebhooks(Protocol):
    """A provider's inbound SMS and delivery-status webhooks: verify, parse, answer.

    Built once per process from the environment (`SmsWebhooksFactory`). `verify` and the
    parsers raise `gateway.forms.BadRequest` (403 for a bad signature or token, 400 naming
    the bad field); none of them touches the database or Redis.
    """

    name: str
    replies_inline: bool  # the reply travels in the webhook's answer (TwiML), else via the outbox

    def verify(self, request: WebhookRequest) -> None: ...

    def parse_sms(
        self, request: WebhookRequest, received_at: datetime, country: str
    ) -> Inbound: ...

    def parse_status(self, request: WebhookRequest) -> StatusUpdate: ...

    def answer_sms(self, reply: str | None) -> Answer:
        """The answer to an inbound message (`reply` is None or "" when nothing is said)."""
        ...

    def answer_status(self) -> Answer:
        """The answer to a status callback the registry recorded."""
        ...


class SmsWebhooksFactory(Protocol):
    """A provider's SmsWebhooks class: where its webhooks live, and how to build it."""

    sms_path: str  # e.g. "/webhooks/twilio/sms"
    status_path: str  # e.g. "/webhooks/twilio/status"

    def __call__(self, env: Mapping[str, str]) -> SmsWebhooks: ...


@dataclass(frozen=True)
class CallStep:
    """One request of a call on the voice menu, as a provider's adapter parsed it."""

    call_id: str  # the provider's id of the call (Vonage uuid): the menu session's key
    step: int  # 0 for the call's first request; the step the app's URL named after that
    phone: str | None  # the citizen's E.164 number; None when withheld
    digits: str | None  # the keys pressed; None on the first request or when none were
    recording_url: str | None = None  # after a recording, where the provider keeps it
    pushed: bool = False  # the provider does not read this answer: push it to the live call


@dataclass(frozen=True)
class CallEvent:
    """A provider's word on a call's progress (its event or status webhook)."""

    call_id: str
    status: str  # the provider's status word
    answered: bool  # the citizen picked up
    ended: bool  # the call is over
    failed: bool  # it ended without ever being answered because it could not be (not busy)


class VoiceMenu(Protocol):
    """A provider's voice menu: verify and parse each call step, render the shared menu's
    screens in its call-control language (TwiML, AT XML, NCCO). `verify` and the parsers raise
    `gateway.forms.BadRequest`; none of them touches the database or Redis."""

    name: str

    def verify(self, request: WebhookRequest) -> None: ...

    def parse_step(self, request: WebhookRequest, country: str) -> CallStep: ...

    def parse_event(self, request: WebhookRequest) -> CallEvent: ...

    def render_screen(self, menu: Menu, screen: Screen, next_url: str) -> Answer:
        """A menu screen; the caller's answer (keys, recording) goes to `next_url`."""
        ...

    def render_goodbye(self, menu: Menu, text: str, language: str) -> Answer:
        """Say `text` and hang up."""
        ...

    def push(self, call_id: str, answer: Answer) -> None:
        """Run `answer` on the live call (for a step whose webhook answer is not read)."""
        ...


class VoiceMenuFactory(Protocol):
    """A provider's VoiceMenu class: where its voice webhooks live, and how to build it."""

    answer_path: str  # the call's first request (the number's answer URL)
    step_path: str  # every later step, at URLs the app's answers name
    event_path: str  # call progress events

    def __call__(self, env: Mapping[str, str]) -> VoiceMenu: ...


@dataclass(frozen=True)
class CallPaths:
    """Where a provider that fetches a placed call's instructions finds them: paths on the
    app's public URL, `{survey}` / `{call}` filled with the survey's or the call's id. None:
    that kind of call has no renderer on this provider (the call fails, final, saying so)."""

    menu: str  # a call-back: the voice menu
    status: str  # call progress callbacks
    survey: str | None  # a voice survey's question
    notice: str | None  # a notice read to a landline
