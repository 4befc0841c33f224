"""Fuzzing every webhook route and the JSON API: random, missing and huge fields, unicode with
NUL, lone surrogates and invalid UTF-8 are never answered with a 5xx while the database is up,
and a refused request (4xx) writes nothing. Twilio requests are signed and Africa's Talking ones
carry the token, so the fuzz reaches the handlers; example counts are bounded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote_from_bytes

import httpx
import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from starlette.routing import Route
from starlette.testclient import TestClient

from casestore.config import Config
from gateway.app import create_app
from gateway.providers.twilio import compute_signature
from gateway.routes.openapi import document
from gateway.settings import Settings
from tests.conftest import AT_TOKEN, PUBLIC_URL, TWILIO_TOKEN
from tests.helpers import counts, post_twilio, twilio_form

# Derandomized: the same examples every run, so a failure in `make test` is reproducible;
# `python -m bench.fuzz --seed N` explores further.
FUZZ = settings(
    max_examples=80,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

# Field names each provider sends on its routes (any route may get any of them).
TWILIO_FIELDS = (
    "MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "From", "To", "Body", "NumMedia",
    "MediaUrl0", "MessageStatus", "ErrorCode", "ErrorMessage", "CallSid", "CallStatus",
    "Direction", "Digits", "SpeechResult", "RecordingUrl", "RecordingDuration", "QueueResult",
    "DialCallStatus", "CallDuration", "AnsweredBy", "ParentCallSid",
)  # fmt: skip
AT_FIELDS = (
    "id", "from", "to", "text", "date", "linkId", "networkCode", "status", "failureReason",
    "sessionId", "serviceCode", "phoneNumber", "isActive", "callerNumber", "destinationNumber",
    "direction", "dtmfDigits", "recordingUrl", "callSessionState", "hangupCause",
    "durationInSeconds", "amount",
)  # fmt: skip
SMS_PATHS = ("/webhooks/twilio/sms", "/webhooks/africastalking/sms")
QUERY_KEYS = ("step", "rec", "d", "dept", "urgent", "c", "at", "n", "q", "survey", "queue")
PHONES = ("+5491155550700", "+5491155550701", "5491155550702", "1155550703", "ACME", "", "+12")

# Text as hostile as a network sends: NUL and other controls, lone surrogates, emoji, accents.
hostile_text = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(["", "1", "0", "98", "00", "5", "ESTADO", "BAJA", "\x00", "@\x00@", "\ud800"]),
)
huge_text = st.builds(lambda n: "x\x00" * n, st.sampled_from([150, 3000, 40_000]))
raw_bytes = st.binary(max_size=12)


@st.composite
def field_value(draw: st.DrawFn, name: str) -> bytes:
    """One value as the bytes that go in the body (before percent-encoding)."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(raw_bytes)  # invalid UTF-8 included
    if kind == 19:
        return str(draw(huge_text)).encode()
    if kind <= 2 and name in ("From", "To", "from", "to", "phoneNumber", "callerNumber"):
        return draw(st.sampled_from(PHONES)).encode()
    return str(draw(hostile_text)).encode("utf-8", "surrogatepass")


@st.composite
def form_body(draw: st.DrawFn, names: tuple[str, ...], base: dict[str, str]) -> bytes:
    """A real-shaped form with fields dropped, changed and added at random."""
    fields: list[tuple[bytes, bytes]] = []
    for name, value in base.items():
        choice = draw(st.integers(0, 11))
        if choice == 0:
            continue  # missing
        if choice == 1:
            fields.append((name.encode(), draw(field_value(name))))
        else:
            fields.append((name.encode(), value.encode("utf-8", "surrogatepass")))
    for name in draw(st.lists(st.sampled_from(names), max_size=4)):
        fields.append((name.encode(), draw(field_value(name))))
    if draw(st.integers(0, 9)) == 0:
        fields.append((draw(raw_bytes), draw(raw_bytes)))
    return b"&".join(
        quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in fields
    )


@st.composite
def query(draw: st.DrawFn) -> str:
    pairs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(QUERY_KEYS),
                st.one_of(
                    st.sampled_from(["0", "1", "2", "ALIM"]),
                    raw_bytes.map(bytes.hex),
                    raw_bytes.map(lambda b: b.decode("latin-1")),
                ),
            ),
            max_size=3,
        )
    )
    return "&".join(f"{k}={quote_from_bytes(v.encode('utf-8', 'surrogatepass'))}" for k, v in pairs)


def webhook_paths(app: Any) -> list[str]:
    """Every webhook route of the app (a new one is fuzzed without editing this file)."""
    return sorted(
        r.path for r in app.routes if isinstance(r, Route) and r.path.startswith("/webhooks/")
    )


def base_form(path: str) -> dict[str, str]:
    if "/twilio/" in path:
        form = twilio_form("Hola, no me llega la tarjeta alimentar", sender="+5491155550704")
        form.update(CallSid="CA" + "1" * 32, CallStatus="in-progress", MessageStatus="delivered")
        return form
    return {
        "id": "ATXid_fuzz",
        "sessionId": "ATUid_fuzz",
        "from": "+5491155550705",
        "phoneNumber": "+5491155550705",
        "callerNumber": "+5491155550705",
        "to": "22384",
        "text": "1",
        "serviceCode": "*384*123#",
        "networkCode": "72207",
        "isActive": "1",
        "status": "Success",
        "direction": "inbound",
    }


def post(client: TestClient, path: str, body: bytes, query_string: str) -> Any:
    """POST as the provider would: AT's token in the URL, Twilio's signature over the URL
    and the fields as the gateway parses them from these bytes."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if "/africastalking/" in path:
        query_string = "&".join(q for q in (f"token={AT_TOKEN}", query_string) if q)
    url = path + (f"?{query_string}" if query_string else "")
    if "/twilio/" in path:
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        headers["X-Twilio-Signature"] = compute_signature(TWILIO_TOKEN, PUBLIC_URL + url, fields)
    return client.post(url, content=body, headers=headers)


def check(client: TestClient, db_url: str, send: Any) -> None:
    before = counts(db_url)
    response = send()
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if 400 <= response.status_code < 500:
        assert counts(db_url) == before, f"a {response.status_code} answer wrote rows"


@pytest.fixture
def fuzz_client(client: TestClient, redis_url: str) -> Iterator[TestClient]:
    yield client
    flusher = redis.Redis.from_url(redis_url)
    flusher.flushdb()
    flusher.close()


def test_every_webhook_route_is_fuzzed(fuzz_client: TestClient, db_url: str) -> None:
    paths = webhook_paths(fuzz_client.app)
    assert "/webhooks/twilio/sms" in paths and "/webhooks/africastalking/ussd" in paths

    @settings(FUZZ, max_examples=150)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        # Half to the inbound SMS routes, whose acknowledged messages must never be lost.
        path = data.draw(st.sampled_from(SMS_PATHS) | st.sampled_from(paths), label="path")
        names = TWILIO_FIELDS if "/twilio/" in path else AT_FIELDS
        base = base_form(path)
        for text_field in ("Body", "text"):  # what the citizen typed: always hostile
            if text_field in base:
                base[text_field] = data.draw(hostile_text, label=text_field)
        body = data.draw(form_body(names, base), label="body")
        query_string = data.draw(query(), label="query")
        check(fuzz_client, db_url, lambda: post(fuzz_client, path, body, query_string))

    run()


# ---------------------------------------------------------------- the JSON API
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)


EDGE_TIMES = st.sampled_from(
    ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+05:00", "2026-13-01", "2026-12-04Z", ""]
)


def test_json_api_is_fuzzed(fuzz_client: TestClient, db_url: str, token: str) -> None:
    reply = post_twilio(fuzz_client, twilio_form("No me llega la tarjeta alimentar")).text
    number = "".join(ch for ch in reply.split("<Message>")[1] if ch.isdigit())[:10]
    auth = {"Authorization": f"Bearer {token}"}

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        headers = dict(auth) if data.draw(st.integers(0, 5), label="auth") else {}
        send: Any
        target = data.draw(
            st.sampled_from([number, "0000000000", "x%01", "%00", "%ED%A0%80", "%FF"])
        )
        kind = data.draw(st.integers(0, 4), label="kind")
        if kind == 4:
            params = {
                "by": data.draw(st.sampled_from(["department", "month", "nada", "\x00"])),
                "from": data.draw(st.one_of(EDGE_TIMES, hostile_text)),
                "to": data.draw(st.one_of(EDGE_TIMES, hostile_text)),
            }
            scores = "&".join(
                f"{k}={quote_from_bytes(v.encode('utf-8', 'surrogatepass'))}"
                for k, v in params.items()
            )
            send = lambda: fuzz_client.get(  # noqa: E731
                f"/api/v1/surveys/scores?{scores}", headers=headers
            )
        elif kind == 0:
            qs = (
                data.draw(query(), label="query").replace("step", "q").replace("dept", "department")
            )
            send = lambda: fuzz_client.get(f"/api/v1/cases?{qs}", headers=headers)  # noqa: E731
        elif kind == 1:
            send = lambda: fuzz_client.get(f"/api/v1/cases/{target}", headers=headers)  # noqa: E731
        else:
            if kind == 2:
                document_ = data.draw(
                    st.fixed_dictionaries(
                        {"status": st.sampled_from(["in_progress", "closed", "nada", "\x00"])},
                        optional={"note": json_values},
                    )
                )
                body = json.dumps(document_).encode()
            else:
                body = data.draw(st.binary(max_size=64), label="raw body")
            headers["content-type"] = "application/json"
            send = lambda: fuzz_client.post(  # noqa: E731
                f"/api/v1/cases/{target}/status", content=body, headers=headers
            )
        check(fuzz_client, db_url, send)

    run()


# ---------------------------------------------------------------- OpenAPI and schemathesis
def test_every_api_route_is_in_the_openapi_document(client: TestClient) -> None:
    published = client.get("/api/v1/openapi.json")
    assert published.status_code == 200
    paths = published.json()["paths"]
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.path.startswith("/api/v1"):
            assert route.path in paths, f"{route.path} is not in the OpenAPI document"
            described = {m.upper() for m in paths[route.path]}
            assert set(route.methods or ()) - {"HEAD"} <= described, route.path


SCHEMA = schemathesis.openapi.from_dict(document())


@pytest.fixture
def served_url(settings: Settings, config: Config, token: str) -> Iterator[str]:
    """The real app served by uvicorn on 127.0.0.1 (a free port), with one case in it."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, config), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        threading.Event().wait(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    form = twilio_form("No me llega la tarjeta alimentar")
    signature = compute_signature(TWILIO_TOKEN, PUBLIC_URL + "/webhooks/twilio/sms", form)
    httpx.post(url + "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@SCHEMA.parametrize()
@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_schemathesis_finds_no_server_error(case: Any, served_url: str, token: str) -> None:
    response = case.call(base_url=served_url, headers={"Authorization": f"Bearer {token}"})
    case.validate_response(response, checks=[not_a_server_error])
