"""A fake Twilio + Africa's Talking + Vonage HTTP server for tests and benchmarks (stdlib only).

    with FakeProvider() as fake:
        sender = TwilioSender(fake.twilio_account_sid, fake.twilio_auth_token, "+5491155550000",
                              api_base_url=fake.url)
        sender.send_sms("+5491155550001", "hola")
        assert fake.messages[0].to == "+5491155550001"

It answers in the providers' real formats (status codes, JSON shapes, Content-Type), checks
their credentials (Twilio HTTP Basic, AT `apiKey` header + `username`), records every request,
and can be scripted to fail: `fail_next("twilio", 500, {...})`, or to answer slowly:
`answer_delay = 0.5`. One server serves every provider and AT's voice host: point
TWILIO_API_BASE_URL, AT_API_BASE_URL, AT_VOICE_BASE_URL and VONAGE_API_BASE_URL at `.url`
(Vonage: POST /v1/messages, POST /v1/calls, PUT /v1/calls/{uuid}, JSON in and out).
`FakeProvider(fast=True)` serves the same answers from one asyncio loop instead of a thread
per connection (benchmarks).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

# Fictional credentials: recognisable in a leak check, useless anywhere else.
TWILIO_ACCOUNT_SID = "AC" + "fa4e0000000000000000000000000001"
TWILIO_AUTH_TOKEN = "twilio-secret-token-do-not-log-7f3a"
AT_USERNAME = "ventanilla-test"
AT_API_KEY = "atsk_secret-api-key-do-not-log-91c2"
VONAGE_API_KEY = "vonage-key-1"
VONAGE_API_SECRET = "vonage-secret-do-not-log-3b7e"
VONAGE_APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
_VONAGE_NUMBER = re.compile(r"^[1-9]\d{6,14}$")
_VONAGE_CALL = re.compile(r"^/v1/calls/(?P<uuid>[^/]+)$")

PROVIDERS = ("twilio", "africastalking", "vonage")
_Item = TypeVar("_Item")

_TWILIO_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_TWILIO_CALLS = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Calls\.json$")
_TWILIO_RECORDINGS = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Recordings\.json$")
_TWILIO_RECORDING = re.compile(
    r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Recordings/(?P<rec>[^/]+?)(?:\.json)?$"
)
_AT_NUMBER = re.compile(r"^\+\d{6,15}$")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    query: dict[str, str]
    provider: str | None  # "twilio", "africastalking", or None for an unknown path

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True)
class FakeMessage:
    """One SMS (or WhatsApp message) the fake accepted."""

    provider: str
    to: str
    body: str
    from_: str | None
    ref: str  # the sid / messageId it answered with
    status_callback: str | None = None
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class FakeCall:
    """One outbound call the fake accepted."""

    provider: str
    to: str
    from_: str | None
    ref: str  # CA… sid / ATVId_… sessionId
    form: dict[str, str]
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class FakeRecording:
    """A call recording Twilio keeps (add one with `add_recording`)."""

    sid: str  # RE…
    call_sid: str
    url: str  # as a RecordingUrl webhook field carries it (api.twilio.com, no extension)
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class _Scripted:
    status: int
    body: dict[str, Any] | list[Any] | str
    delay: float


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str
    delay: float = 0.0


def _json_reply(status: int, value: object) -> _Reply:
    # AT's SDK parses a body only when Content-Type is exactly "application/json".
    return _Reply(status, json.dumps(value).encode(), "application/json")


def _twilio_page(
    path: str,
    query: dict[str, str],
    key: str,
    found: Sequence[_Item],
    as_json: Callable[[_Item], dict[str, Any]],
) -> _Reply:
    """One page of a Twilio list (`key`: "messages", "calls", ...), shaped as the SDK pages."""
    page_size = int(query.get("PageSize", "50") or 50)
    items = [as_json(item) for item in found[:page_size]]
    return _json_reply(
        200,
        {
            key: items,
            "end": max(len(items) - 1, 0),
            "first_page_uri": f"{path}?PageSize={page_size}&Page=0",
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": f"{path}?PageSize={page_size}&Page=0",
        },
    )


def _text_reply(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode(), "text/plain; charset=utf-8")


def _twilio_error(status: int, code: int, message: str) -> _Reply:
    return _json_reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment)  # "Thu, 30 Jul 2015 20:12:31 +0000", as Twilio writes it


def _parse_after(value: str) -> datetime | None:
    """Twilio's DateSent filter: a date (YYYY-MM-DD) or the SDK's ISO 8601 datetime."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class FakeProvider:
    """Twilio, Africa's Talking and Vonage on 127.0.0.1, in a daemon thread; use it as a context
    manager."""

    def __init__(
        self,
        *,
        twilio_account_sid: str = TWILIO_ACCOUNT_SID,
        twilio_auth_token: str = TWILIO_AUTH_TOKEN,
        at_username: str = AT_USERNAME,
        at_api_key: str = AT_API_KEY,
        fast: bool = False,
    ) -> None:
        """`fast`: serve on one asyncio loop instead of a thread per connection, for benchmarks
        (same answers, a fraction of the CPU per request)."""
        self.fast = fast
        self.twilio_account_sid = twilio_account_sid
        self.twilio_auth_token = twilio_auth_token
        self.at_username = at_username
        self.at_api_key = at_api_key
        self.requests: list[RecordedRequest] = []
        self.messages: list[FakeMessage] = []
        self.calls: list[FakeCall] = []
        self.recordings: list[FakeRecording] = []  # those not deleted
        self.deleted_recordings: list[str] = []  # sids a DELETE removed
        self.transfers: list[tuple[str, Any]] = []  # Vonage: (call uuid, NCCO) pushed to calls
        self._scripted: dict[str, deque[_Scripted]] = {p: deque() for p in PROVIDERS}
        # Seconds every unscripted answer is held back, after the request is recorded and its
        # message accepted: a slow provider (a worker can die while waiting for the answer).
        self.answer_delay = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | _FastServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _FastServer(self) if self.fast else _Server(("127.0.0.1", 0), _make_handler(self))
        self._server = server
        self._thread = threading.Thread(
            # A short poll interval: shutdown() waits for it, once per test.
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:PORT" (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("FakeProvider is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting -------------------------------------------------------------------------

    def fail_next(
        self,
        provider: str,
        status: int,
        body: dict[str, Any] | list[Any] | str,
        times: int = 1,
        *,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` authenticated requests to `provider` with `status` + `body`.

        A dict or list is sent as JSON, a str as text/plain. The request is still recorded, but
        nothing is added to `.messages`. `delay` (seconds) holds the answer back, to test
        timeouts. Any status may be scripted, so a 201 with failing recipients works too.
        """
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, not {provider!r}")
        with self._lock:
            for _ in range(times):
                self._scripted[provider].append(_Scripted(status, body, delay))

    def add_recording(self, call_sid: str) -> FakeRecording:
        """Keep a recording of `call_sid`, as Twilio does after <Record> or a recorded call."""
        sid = "RE" + secrets.token_hex(16)
        url = (
            f"https://api.twilio.com/2010-04-01/Accounts/{self.twilio_account_sid}/Recordings/{sid}"
        )
        recording = FakeRecording(sid, call_sid, url)
        with self._lock:
            self.recordings.append(recording)
        return recording

    def reset(self) -> None:
        """Forget recorded requests, messages, calls and scripted answers."""
        with self._lock:
            self.requests.clear()
            self.messages.clear()
            self.calls.clear()
            self.recordings.clear()
            self.deleted_recordings.clear()
            self.transfers.clear()
            for queue in self._scripted.values():
                queue.clear()

    # -- request handling (runs in server threads) -----------------------------------------

    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(raw_path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        form: dict[str, str] = {}
        content_type = _lookup(headers, "content-type") or ""
        if body and content_type.startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        payload: Any = None
        if body and content_type.startswith("application/json"):
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
        provider = _provider_for(path)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, form, query, provider))

        if provider == "twilio":
            denied = self._twilio_auth(path, headers)
            if denied is not None:
                return denied
            scripted = self._pop_script("twilio")
            return scripted or self._twilio(method, path, form, query)
        if provider == "africastalking":
            denied = self._at_auth(headers, form, query)
            if denied is not None:
                return denied
            scripted = self._pop_script("africastalking")
            return scripted or self._at(method, path, form)
        if provider == "vonage":
            denied = self._vonage_auth(path, headers)
            if denied is not None:
                return denied
            scripted = self._pop_script("vonage")
            return scripted or self._vonage(method, path, payload)
        return _text_reply(404, "Not Found")

    def _pop_script(self, provider: str) -> _Reply | None:
        with self._lock:
            if not self._scripted[provider]:
                return None
            script = self._scripted[provider].popleft()
        if isinstance(script.body, str):
            reply = _text_reply(script.status, script.body)
        else:
            reply = _json_reply(script.status, script.body)
        reply.delay = script.delay
        return reply

    # Twilio -------------------------------------------------------------------------------

    def _twilio_auth(self, path: str, headers: dict[str, str]) -> _Reply | None:
        expected = f"{self.twilio_account_sid}:{self.twilio_auth_token}".encode()
        header = _lookup(headers, "authorization") or ""
        supplied = b""
        if header.startswith("Basic "):
            try:
                supplied = base64.b64decode(header[6:], validate=True)
            except ValueError:
                supplied = b""
        match = (
            _TWILIO_MESSAGES.match(path)
            or _TWILIO_CALLS.match(path)
            or _TWILIO_RECORDINGS.match(path)
            or _TWILIO_RECORDING.match(path)
        )
        path_sid = match.group("sid") if match else self.twilio_account_sid
        if not secrets.compare_digest(supplied, expected) or path_sid != self.twilio_account_sid:
            return _twilio_error(401, 20003, "Authenticate")
        return None

    def _twilio(
        self, method: str, path: str, form: dict[str, str], query: dict[str, str]
    ) -> _Reply:
        if _TWILIO_MESSAGES.match(path):
            if method == "POST":
                return self._twilio_create_message(form)
            if method == "GET":
                return self._twilio_list_messages(path, query)
            return _twilio_error(405, 20004, "Method not allowed")
        if _TWILIO_CALLS.match(path) and method == "POST":
            return self._twilio_create_call(form)
        if _TWILIO_CALLS.match(path) and method == "GET":
            return self._twilio_list_calls(path, query)
        if _TWILIO_RECORDINGS.match(path) and method == "GET":
            return self._twilio_list_recordings(path, query)
        one = _TWILIO_RECORDING.match(path)
        if one and method in ("GET", "DELETE"):
            return self._twilio_recording(method, path, one.group("rec"))
        return _twilio_error(404, 20404, f"The requested resource {path} was not found")

    def _twilio_create_message(self, form: dict[str, str]) -> _Reply:
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender and not form.get("MessagingServiceSid"):
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not form.get("MediaUrl"):
            return _twilio_error(400, 21602, "Message body is required.")
        message = FakeMessage(
            provider="twilio",
            to=to,
            body=body,
            from_=sender or None,
            ref="SM" + secrets.token_hex(16),
            status_callback=form.get("StatusCallback"),
        )
        with self._lock:
            self.messages.append(message)
        return _json_reply(201, self._twilio_message_json(message))

    def _twilio_message_json(self, message: FakeMessage) -> dict[str, Any]:
        sid, account = message.ref, self.twilio_account_sid
        created = _rfc2822(message.date_created)
        uri = f"/2010-04-01/Accounts/{account}/Messages/{sid}.json"
        return {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": created,
            "date_sent": created,  # the fake "sends" at once, so DateSent filters find it
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": message.to,
            "uri": uri,
        }

    def _twilio_list_messages(self, path: str, query: dict[str, str]) -> _Reply:
        # `DateSent>=2024-05-01` in a query string parses as key "DateSent>" (on or after).
        after = _parse_after(query.get("DateSent>", "")) if query.get("DateSent>") else None
        with self._lock:
            found = [
                m
                for m in self.messages
                if m.provider == "twilio"
                and ("To" not in query or m.to == query["To"])
                and ("From" not in query or m.from_ == query["From"])
                and (after is None or m.date_created >= after)
            ]
        found.sort(key=lambda m: m.date_created, reverse=True)  # Twilio lists newest first
        return _twilio_page(path, query, "messages", found, self._twilio_message_json)

    def _twilio_recording_json(self, recording: FakeRecording) -> dict[str, Any]:
        account = self.twilio_account_sid
        created = _rfc2822(recording.date_created)
        return {
            "account_sid": account,
            "api_version": "2010-04-01",
            "call_sid": recording.call_sid,
            "channels": 1,
            "date_created": created,
            "date_updated": created,
            "duration": "12",
            "sid": recording.sid,
            "source": "RecordVerb",
            "status": "completed",
            "uri": f"/2010-04-01/Accounts/{account}/Recordings/{recording.sid}.json",
        }

    def _twilio_list_recordings(self, path: str, query: dict[str, str]) -> _Reply:
        with self._lock:
            found = [
                r
                for r in self.recordings
                if "CallSid" not in query or r.call_sid == query["CallSid"]
            ]
        found.sort(key=lambda r: r.date_created, reverse=True)
        return _twilio_page(path, query, "recordings", found, self._twilio_recording_json)

    def _twilio_recording(self, method: str, path: str, sid: str) -> _Reply:
        with self._lock:
            recording = next((r for r in self.recordings if r.sid == sid), None)
            if recording is not None and method == "DELETE":
                self.recordings.remove(recording)
                self.deleted_recordings.append(sid)
        if recording is None:
            return _twilio_error(404, 20404, f"The requested resource {path} was not found")
        if method == "DELETE":
            return _Reply(204, b"", "application/json")
        return _json_reply(200, self._twilio_recording_json(recording))

    def _twilio_create_call(self, form: dict[str, str]) -> _Reply:
        to, sender = form.get("To", ""), form.get("From", "")
        if not to:
            return _twilio_error(400, 21201, "No 'To' number is specified")
        if not sender:
            return _twilio_error(400, 21213, "No 'From' number is specified")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return _twilio_error(400, 21205, "Url parameter is required.")
        call = FakeCall("twilio", to, sender, "CA" + secrets.token_hex(16), form)
        with self._lock:
            self.calls.append(call)
        return _json_reply(201, self._twilio_call_json(call))

    def _twilio_call_json(self, call: FakeCall) -> dict[str, Any]:
        created = _rfc2822(call.date_created)
        account = self.twilio_account_sid
        return {
            "account_sid": account,
            "api_version": "2010-04-01",
            "date_created": created,
            "date_updated": created,
            "direction": "outbound-api",
            "from": call.from_,
            "from_formatted": call.from_,
            "sid": call.ref,
            "status": "queued",
            "to": call.to,
            "to_formatted": call.to,
            "uri": f"/2010-04-01/Accounts/{account}/Calls/{call.ref}.json",
        }

    def _twilio_list_calls(self, path: str, query: dict[str, str]) -> _Reply:
        """GET Calls.json: the calls placed, filtered by To and From, newest first."""
        with self._lock:
            found = [
                c
                for c in self.calls
                if c.provider == "twilio"
                and ("To" not in query or c.to == query["To"])
                and ("From" not in query or c.from_ == query["From"])
            ]
        found.sort(key=lambda c: c.date_created, reverse=True)
        return _twilio_page(path, query, "calls", found, self._twilio_call_json)

    # Africa's Talking ----------------------------------------------------------------------

    def _at_auth(
        self, headers: dict[str, str], form: dict[str, str], query: dict[str, str]
    ) -> _Reply | None:
        key = _lookup(headers, "apikey") or ""
        username = form.get("username", query.get("username", ""))
        if not secrets.compare_digest(key.encode(), self.at_api_key.encode()) or (
            username != self.at_username
        ):
            return _text_reply(401, "The supplied authentication is invalid")
        return None

    def _at(self, method: str, path: str, form: dict[str, str]) -> _Reply:
        if path == "/version1/messaging" and method == "POST":
            return self._at_send_sms(form)
        if path == "/call" and method == "POST":
            return self._at_call(form)
        return _text_reply(404, "Not Found")

    def _at_send_sms(self, form: dict[str, str]) -> _Reply:
        for required in ("to", "message"):
            if not form.get(required):
                return _text_reply(400, f"Request is missing required form field '{required}'")
        numbers = [n.strip() for n in form["to"].split(",") if n.strip()]
        recipients: list[dict[str, Any]] = []
        accepted = []
        for number in numbers:
            if _AT_NUMBER.match(number):
                message = FakeMessage(
                    provider="africastalking",
                    to=number,
                    body=form["message"],
                    from_=form.get("from"),
                    ref="ATXid_" + secrets.token_hex(16),
                )
                accepted.append(message)
                recipients.append(
                    {
                        "statusCode": 101,
                        "number": number,
                        "status": "Success",
                        "cost": "KES 0.8000",
                        "messageId": message.ref,
                    }
                )
            else:
                recipients.append(
                    {
                        "statusCode": 403,
                        "number": number,
                        "status": "InvalidPhoneNumber",
                        "cost": "0",
                        "messageId": "None",
                    }
                )
        with self._lock:
            self.messages.extend(accepted)
        total = f"KES {0.8 * len(accepted):.4f}" if accepted else "0"
        return _json_reply(
            201,
            {
                "SMSMessageData": {
                    "Message": f"Sent to {len(accepted)}/{len(numbers)} Total Cost: {total}",
                    "Recipients": recipients,
                }
            },
        )

    def _at_call(self, form: dict[str, str]) -> _Reply:
        if not form.get("from") or not form.get("to"):
            return _json_reply(200, {"entries": [], "errorMessage": "Missing from or to"})
        entries = []
        for number in (n.strip() for n in form["to"].split(",") if n.strip()):
            call = FakeCall(
                "africastalking", number, form["from"], "ATVId_" + secrets.token_hex(16), form
            )
            with self._lock:
                self.calls.append(call)
            entries.append({"phoneNumber": number, "status": "Queued", "sessionId": call.ref})
        return _json_reply(200, {"entries": entries, "errorMessage": "None"})

    # Vonage -------------------------------------------------------------------------------

    def _vonage_auth(self, path: str, headers: dict[str, str]) -> _Reply | None:
        """Basic (Messages only) with the API key and secret, or an application JWT (RS256,
        its signature not checked here: the fake holds no public key) naming the application."""
        header = _lookup(headers, "authorization") or ""
        if header.startswith("Basic ") and path == "/v1/messages":
            expected = f"{VONAGE_API_KEY}:{VONAGE_API_SECRET}".encode()
            try:
                supplied = base64.b64decode(header[6:], validate=True)
            except ValueError:
                supplied = b""
            if secrets.compare_digest(supplied, expected):
                return None
        if header.startswith("Bearer "):
            claims = _jwt_claims(header[7:])
            if claims.get("application_id") == VONAGE_APPLICATION_ID:
                return None
        return _vonage_error(401, "Unauthorized", "You did not provide correct credentials.")

    def _vonage(self, method: str, path: str, payload: Any) -> _Reply:
        live = _VONAGE_CALL.match(path)
        if live and method == "PUT":
            return self._vonage_transfer(live.group("uuid"), payload)
        if method != "POST" or path not in ("/v1/messages", "/v1/calls"):
            return _vonage_error(404, "Not Found", f"{method} {path} is not a resource")
        if not isinstance(payload, dict):
            return _vonage_error(422, "Invalid params", "The body is not a JSON object")
        if path == "/v1/messages":
            return self._vonage_message(payload)
        return self._vonage_call(payload)

    def _vonage_transfer(self, uuid_: str, payload: Any) -> _Reply:
        """PUT /v1/calls/{uuid} {"action": "transfer", "destination": {"type": "ncco", ...}}."""
        destination = payload.get("destination") if isinstance(payload, dict) else None
        if (
            not isinstance(destination, dict)
            or payload.get("action") != "transfer"
            or not isinstance(destination.get("ncco"), list)
        ):
            return _vonage_error(400, "Bad Request", "expected a transfer to an NCCO")
        with self._lock:
            self.transfers.append((uuid_, destination["ncco"]))
        return _Reply(204, b"", "application/json")

    def _vonage_message(self, payload: dict[str, Any]) -> _Reply:
        to, sender, text = payload.get("to"), payload.get("from"), payload.get("text")
        if payload.get("channel") != "sms" or payload.get("message_type") != "text":
            return _vonage_error(422, "Invalid params", "channel must be sms, type text")
        if not isinstance(to, str) or not _VONAGE_NUMBER.match(to):
            return _vonage_error(422, "Invalid params", "The value of `to` is not a number")
        if not sender or not text:
            return _vonage_error(422, "Invalid params", "`from` and `text` are required")
        message = FakeMessage(
            provider="vonage",
            to=to,
            body=str(text),
            from_=str(sender),
            ref=str(uuid.uuid4()),
            status_callback=payload.get("webhook_url"),
        )
        with self._lock:
            self.messages.append(message)
        return _json_reply(202, {"message_uuid": message.ref})

    def _vonage_call(self, payload: dict[str, Any]) -> _Reply:
        to = payload.get("to")
        first = to[0] if isinstance(to, list) and to else None
        number = first.get("number") if isinstance(first, dict) else None
        if not isinstance(number, str) or not _VONAGE_NUMBER.match(number):
            return _vonage_error(400, "Bad Request", "to[0].number is not a phone number")
        if not payload.get("answer_url") and not payload.get("ncco"):
            return _vonage_error(400, "Bad Request", "answer_url or ncco is required")
        sender = payload.get("from")
        call = FakeCall(
            "vonage",
            number,
            sender.get("number") if isinstance(sender, dict) else None,
            str(uuid.uuid4()),
            {k: json.dumps(v) if not isinstance(v, str) else v for k, v in payload.items()},
        )
        with self._lock:
            self.calls.append(call)
        return _json_reply(
            201,
            {
                "uuid": call.ref,
                "status": "started",
                "direction": "outbound",
                "conversation_uuid": "CON-" + str(uuid.uuid4()),
            },
        )


def _vonage_error(status: int, title: str, detail: str) -> _Reply:
    """A Vonage error: an RFC 7807 problem document."""
    body = {
        "type": f"https://developer.vonage.com/api-errors#{status}",
        "title": title,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    return _Reply(status, json.dumps(body).encode(), "application/problem+json")


def _jwt_claims(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _provider_for(path: str) -> str | None:
    if path.startswith("/2010-04-01/"):
        return "twilio"
    if path.startswith("/version1/") or path == "/call":
        return "africastalking"
    if path.startswith("/v1/"):
        return "vonage"
    return None


def _lookup(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connection bursts (a worker opening 100
    # connections at once), and each dropped SYN costs the client a 1 s retransmit.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (timeout tests, closed keep-alive sockets) is not an error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _make_handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keep-alive, so benchmarks measure the app and not TCP set-up.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY the client's delayed ACK
        # holds every answer back ~40 ms, which caps a few connections at a few hundred req/s.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = fake._handle(self.command, self.path, dict(self.headers.items()), body)
            delay = reply.delay or fake.answer_delay
            if delay:
                time.sleep(delay)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout test): nothing to answer.
                self.close_connection = True

        do_GET = _serve
        do_POST = _serve
        do_DELETE = _serve
        do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; `.requests` has everything

    return Handler


class _FastServer:
    """The fake on one asyncio loop in one thread: no thread per connection and no email-parser
    headers, so it answers several times more requests per CPU-second. HTTP/1.1 keep-alive with
    Content-Length bodies only: what the SDKs and aiohttp send."""

    def __init__(self, fake: FakeProvider) -> None:
        self._loop = asyncio.new_event_loop()
        self._stopped = threading.Event()
        self.open: set[_FastProtocol] = set()
        self._server = self._loop.run_until_complete(
            self._loop.create_server(
                lambda: _FastProtocol(fake, self), "127.0.0.1", 0, backlog=1024
            )
        )
        self.server_address: tuple[str, int] = self._server.sockets[0].getsockname()[:2]

    def serve_forever(self, poll_interval: float = 0.0) -> None:
        del poll_interval
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._stopped.set()

    def later(self, delay: float, callback: Any, *args: Any) -> None:
        self._loop.call_later(delay, callback, *args)

    def shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._stopped.wait(timeout=5)

    def server_close(self) -> None:
        for protocol in list(self.open):
            protocol.close()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.run_until_complete(asyncio.sleep(0))  # let the transports finish closing
        self._loop.close()


class _FastProtocol(asyncio.Protocol):
    def __init__(self, fake: FakeProvider, server: _FastServer) -> None:
        self._fake = fake
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.open.discard(self)
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
            size = int(_lookup(headers, "content-length") or 0)
            if len(self._buffer) < end + 4 + size:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + size])
            del self._buffer[: end + 4 + size]
            reply = self._fake._handle(method, target, headers, body)
            answer = (
                f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\n"
                f"Content-Type: {reply.content_type}\r\n"
                f"Content-Length: {len(reply.body)}\r\n\r\n"
            ).encode() + reply.body
            delay = reply.delay or self._fake.answer_delay
            if delay:
                self._server.later(delay, self._write, answer)
            else:
                self._write(answer)

    def _write(self, answer: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(answer)
