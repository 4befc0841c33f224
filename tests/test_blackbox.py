"""The gateway from outside: `ventanilla serve` in its own process, driven over HTTP.

One server for the module, on a free loopback port, with a migrated SQLite file and the test
Redis. Requests are signed as the providers sign them; nothing here reaches into the process.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.helpers import Db, at_form, counts, twilio_form
from tests.settings import REDIS_PREFIX, REDIS_URL

TWILIO_TOKEN = "blackbox-twilio-auth-token"
AT_TOKEN = "blackbox-at-secret-5f0c2e"
SMS_PATH = "/webhooks/twilio/sms"
START_TIMEOUT = 30.0
TRACKING = re.compile(r"\b\d{4} \d{4} \d{2}\b")


def spaced(number: str) -> str:
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ventanilla() -> str:
    return str(Path(sys.executable).parent / "ventanilla")


@dataclass
class Server:
    base_url: str
    db_url: str
    log: Path
    http: httpx.Client

    def sms(self, form: dict[str, str], token: str = TWILIO_TOKEN) -> httpx.Response:
        """POST a Twilio SMS signed over the public URL, as Twilio would."""
        signature = RequestValidator(token).compute_signature(self.base_url + SMS_PATH, form)
        return self.http.post(SMS_PATH, data=form, headers={"X-Twilio-Signature": signature})

    def at_sms(self, form: dict[str, str], token: str | None) -> httpx.Response:
        query = f"?token={token}" if token is not None else ""
        return self.http.post(f"/webhooks/africastalking/sms{query}", data=form)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def long_digit_runs(text: str) -> list[str]:
    runs = re.findall(r"\d(?:[ -]?\d)*", text)
    return [run for run in runs if sum(ch.isdigit() for ch in run) >= 9]


def message(twiml: httpx.Response) -> str:
    """The text of the one <Message> in a TwiML answer."""
    assert twiml.headers["content-type"].startswith(("application/xml", "text/xml"))
    messages = ET.fromstring(twiml.text).findall("Message")
    assert len(messages) == 1, twiml.text
    return messages[0].text or ""


def env(tmp: Path, db_url: str, port: int) -> dict[str, str]:
    return {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp),
        "VENTANILLA_DATABASE_URL": db_url,
        "VENTANILLA_REDIS_URL": REDIS_URL,
        "VENTANILLA__REDIS__PREFIX": REDIS_PREFIX,
        "VENTANILLA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "VENTANILLA_AT_WEBHOOK_TOKEN": AT_TOKEN,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("blackbox")
    db_url = f"sqlite:///{tmp / 'ventanilla.db'}"
    port = free_port()
    environment = env(tmp, db_url, port)
    migrate = subprocess.run(
        [ventanilla(), "migrate"],
        env=environment,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr

    log = tmp / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [ventanilla(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                assert process.poll() is None, "server exited:\n" + log.read_text()
                try:
                    if http.get("/healthz", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "no /healthz:\n" + log.read_text()
                time.sleep(0.1)
            yield Server(base_url, db_url, log, http)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    # Shutdown messages too: the Africa's Talking secret never reaches the output.
    assert AT_TOKEN not in log.read_text(errors="replace")


def test_health_reports_database_and_redis(server: Server) -> None:
    response = server.http.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"] == "ok"


def test_sms_gets_a_receipt_and_a_redelivery_gets_the_same_answer(server: Server) -> None:
    before = len(Db(server.db_url).cases())
    form = twilio_form("no me llego la tarjeta alimentar", sender="+5491155550101")
    first = server.sms(form)
    assert first.status_code == 200, first.text
    receipt = message(first)
    numbers = TRACKING.findall(receipt)
    # The tracking number is the only run of 9+ digits (single spaces or hyphens join runs).
    assert long_digit_runs(receipt) == numbers, receipt

    again = server.sms(form)  # Twilio retries with the same MessageSid
    assert again.status_code == 200
    assert again.text == first.text
    with Db(server.db_url) as db:
        cases = db.cases()
    assert len(cases) == before + 1
    assert cases[-1].tracking_number == numbers[0].replace(" ", "")
    assert cases[-1].department == "ALIM"


def test_status_keyword_from_another_phone_shows_no_personal_data(server: Server) -> None:
    opened = message(server.sms(twilio_form("me pega mi pareja", sender="+5491155550102")))
    number = TRACKING.findall(opened)[0]
    before = counts(server.db_url)["cases"]

    answer = server.sms(twilio_form(f"ESTADO {number}", sender="+5491155550103"))
    assert answer.status_code == 200
    text = message(answer)
    assert number in text
    assert "recibido" in text  # the status, in the citizen's words
    assert "Mujeres" in text  # the department (GEN)
    for personal in ("5555 0102", "55550102", "+549", "pega", "pareja"):
        assert personal not in text
    assert counts(server.db_url)["cases"] == before  # a status query opens nothing

    unspaced = message(
        server.sms(twilio_form(f"estado {number.replace(' ', '')}", "+5491155550103"))
    )
    assert unspaced == text


def test_a_bad_twilio_signature_is_403_and_changes_nothing(server: Server) -> None:
    before = counts(server.db_url)
    form = twilio_form("necesito chapas para el techo", sender="+5491155550104")
    forged = server.sms(form, token="not-the-auth-token")
    assert forged.status_code == 403
    unsigned = server.http.post(SMS_PATH, data=form)
    assert unsigned.status_code == 403
    # A valid signature over different fields does not carry over.
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(server.base_url + SMS_PATH, form)
    tampered = server.http.post(
        SMS_PATH, data={**form, "Body": "otra cosa"}, headers={"X-Twilio-Signature": signature}
    )
    assert tampered.status_code == 403
    assert counts(server.db_url) == before


def test_africas_talking_needs_its_token_and_replies_through_the_outbox(server: Server) -> None:
    before = counts(server.db_url)
    form = at_form("necesito un colchon y frazadas", sender="+5491155550105")
    assert server.at_sms(form, token=None).status_code == 403
    assert server.at_sms(form, token="wrong-token").status_code == 403
    assert counts(server.db_url) == before

    accepted = server.at_sms(form, token=AT_TOKEN)
    assert accepted.status_code == 200, accepted.text
    with Db(server.db_url) as db:
        replies = [m for m in db.outbox() if m.to_address.endswith("1155550105")]
        cases = db.cases()
    assert len(replies) == 1
    assert replies[0].provider == "africastalking"
    assert cases[-1].department == "HAB"
    assert long_digit_runs(replies[0].body) == [spaced(cases[-1].tracking_number)]


def test_a_body_over_64_kib_is_413(server: Server) -> None:
    before = counts(server.db_url)
    form = twilio_form("x" * (65 * 1024), sender="+5491155550106")
    response = server.sms(form)
    assert response.status_code == 413
    assert counts(server.db_url) == before


def test_a_message_without_from_is_400_with_a_reason(server: Server) -> None:
    before = counts(server.db_url)
    form = twilio_form("hola", sender="+5491155550107")
    del form["From"]
    response = server.sms(form)
    assert response.status_code == 400
    assert "From" in response.text
    assert counts(server.db_url) == before


def test_the_access_log_never_shows_the_africas_talking_token(server: Server) -> None:
    form = at_form("consulta por la pension", sender="+5491155550108")
    assert server.at_sms(form, token=AT_TOKEN).status_code == 200
    deadline = time.monotonic() + 5
    while "/webhooks/africastalking/sms" not in server.output():
        assert time.monotonic() < deadline, "no access log line:\n" + server.output()
        time.sleep(0.05)
    output = server.output()
    assert AT_TOKEN not in output
    assert "/webhooks/africastalking/sms?[redacted]" in output
