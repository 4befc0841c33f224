"""A database outage (issue 8, defect 4): acknowledged contacts are spooled, then replayed.

PostgreSQL is cut with a TCP proxy in front of it; SQLite by putting a directory where its
file was (the gateway cannot open it). The app runs in-process; `tests/test_outage_served.py`
runs `ventanilla serve` and kills it.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.db import make_engine
from casestore.models import DeadLetter
from gateway import outage
from gateway.app import create_app
from gateway.redisconn import connect
from gateway.runtime import Runtime
from gateway.settings import load_settings
from gateway.workers import worker
from tests.conftest import PUBLIC_URL, app_env
from tests.faults import TcpProxy
from tests.gateway.test_ussd import Phone, tracking_in
from tests.gateway.test_voice_africastalking import AtCall, _said
from tests.gateway.test_voice_twilio import open_request
from tests.helpers import Db, at_form, post_at, post_twilio, twilio_form

# A cut proxy leaves psycopg connections that SQLAlchemy's pool drops without a clean close.
pytestmark = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning"
)
TRACKING = re.compile(r"\b(\d{4} \d{4} \d{2})\b")


@dataclass
class Outage:
    client: TestClient
    db_url: str  # the database itself, not through the proxy
    cut: Any
    restore: Any

    @property
    def runtime(self) -> Runtime:
        rt: Runtime = self.client.app.state.runtime  # type: ignore[attr-defined]
        return rt

    def replay(self) -> None:
        outage.replay_once(self.runtime)
        assert self.runtime.spool.pending() == 0


@pytest.fixture
def down(db_url: str, redis_url: str, config: Config, tmp_path: Path) -> Iterator[Outage]:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        away = tmp_path / "away"
        away.mkdir()
        app_url = db_url

        def cut_sqlite(rt: Runtime) -> None:
            rt.engine.dispose()
            for name in (path.name, path.name + "-wal", path.name + "-shm"):
                if (path.parent / name).exists():
                    os.rename(path.parent / name, away / name)
            path.mkdir()  # "unable to open database file"

        def restore_sqlite(rt: Runtime) -> None:
            path.rmdir()
            for moved in away.iterdir():
                os.rename(moved, path.parent / moved.name)

        cut, restore, proxy = cut_sqlite, restore_sqlite, None
    else:
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        app_url = url.set(port=proxy.port).render_as_string(hide_password=False)

        def cut_pg(rt: Runtime) -> None:
            assert proxy is not None
            proxy.cut()

        def restore_pg(rt: Runtime) -> None:
            assert proxy is not None
            proxy.restore()

        cut, restore = cut_pg, restore_pg
    app = create_app(load_settings(app_env(app_url, redis_url)), config)
    with TestClient(app, base_url=PUBLIC_URL) as client:
        rt = client.app.state.runtime  # type: ignore[attr-defined]
        yield Outage(client, db_url, lambda: cut(rt), lambda: restore(rt))
    if proxy is not None:
        proxy.close()
    # Connections the cut broke are collected here, not in some later test.
    gc.collect()


def message(response: Any) -> str:
    assert response.status_code == 200, response.text
    return ET.fromstring(response.text).findtext("Message") or ""


def test_sms_during_an_outage_get_receipts_and_become_those_cases(down: Outage) -> None:
    down.cut()
    form = twilio_form("no tenemos gas hace 3 dias", sender="+5491155550201")
    receipt = message(post_twilio(down.client, form))
    number = tracking_in(receipt)
    assert message(post_twilio(down.client, form)) == receipt  # Twilio's retry: same answer
    follow_up = message(post_twilio(down.client, twilio_form("y sin luz", "+5491155550201")))
    assert tracking_in(follow_up) == number  # the conversation goes on in the spool
    at = post_at(down.client, at_form("se corto la luz en el barrio", "+5491155550202"))
    assert at.status_code == 200
    health = down.client.get("/healthz").json()
    assert (health["status"], health["spooled"]) == ("degraded", 3)

    down.restore()
    down.replay()
    health = down.client.get("/healthz").json()
    assert (health["status"], health["spooled"]) == ("ok", 0)
    with Db(down.db_url) as db:
        phones = {c.id: c.phone for c in db.contacts()}
        cases = {phones[c.contact_id]: c for c in db.cases() if c.contact_id is not None}
        assert len(cases) == 2
        twilio_case = cases["+5491155550201"]
        assert twilio_case.tracking_number == number and twilio_case.channel == "sms"
        inbound = [i for i in db.interactions() if i.direction == "in"]
        assert len(inbound) == 3 and all(i.case_id is not None for i in inbound)
        # Twilio's receipt went in the HTTP answer; Africa's Talking's goes out now, once.
        (queued,) = db.outbox()
        at_case = cases["+5491155550202"]
        assert queued.to_address == "+5491155550202"
        assert tracking_in(queued.body) == at_case.tracking_number
        assert at_case.tracking_number.startswith("9")
    # A redelivery after replay is answered from the registry: no second case.
    assert message(post_twilio(down.client, form)) == receipt
    assert len(Db(down.db_url).cases()) == 2


def test_ussd_new_request_finished_during_an_outage_is_kept(down: Outage) -> None:
    phone = Phone(down.client)
    phone.dial()
    phone.send("1", "98", "2", "Sin gas hace 3 dias")
    down.cut()
    done = phone.send("1")
    assert done.startswith("END Pedido registrado.")
    number = tracking_in(done)
    down.restore()
    down.replay()
    with Db(down.db_url) as db:
        (case,) = db.cases()
        assert (case.tracking_number, case.channel, case.category) == (number, "ussd", "comedores")
        (sms,) = db.outbox()
        assert (sms.kind, sms.to_address) == ("receipt", phone.phone)
        assert tracking_in(sms.body) == number
    down.replay()  # nothing twice
    assert len(Db(down.db_url).cases()) == 1


def test_voice_new_request_finished_during_an_outage_is_kept(down: Outage) -> None:
    down.cut()
    number = open_request(down.client, "+5491155550203")
    down.restore()
    down.replay()
    with Db(down.db_url) as db:
        (case,) = db.cases()
        assert (case.tracking_number, case.channel) == (number, "voice")


def test_a_contact_stored_as_the_connection_broke_takes_the_number_it_was_answered_with(
    down: Outage,
) -> None:
    # The database commits, the answer never reaches Twilio, Twilio retries during the cut and
    # the spool answers with its own number: that is the number the citizen holds.
    form = twilio_form("no tenemos gas hace 3 dias", sender="+5491155550204")
    first = tracking_in(message(post_twilio(down.client, form)))
    down.cut()
    held = tracking_in(message(post_twilio(down.client, form)))
    assert held != first
    down.restore()
    down.replay()
    with Db(down.db_url) as db:
        (case,) = db.cases()
        assert case.tracking_number == held
        (reply,) = [i for i in db.interactions() if i.direction == "out"]
        assert tracking_in(reply.text) == held
    assert tracking_in(message(post_twilio(down.client, form))) == held


class CountingStop(threading.Event):
    """The dispatcher's stop event, recording each wait and stopping after a few."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0))
        if len(self.waits) >= self.rounds:
            self.set()
        return self.is_set()


def test_the_dispatcher_backs_off_quietly_while_the_database_is_down(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = tmp_path / "ventanilla.db"
    unreachable.mkdir()  # SQLite cannot open it
    engine = make_engine(f"sqlite:///{unreachable}")
    stop = CountingStop(rounds=6)
    with caplog.at_level(logging.ERROR, logger="gateway.workers.worker"):
        worker._dispatch_loop(engine, worker.make_queue(connect(redis_url)), stop, 0.5, None, None)
    engine.dispose()
    assert stop.waits == sorted(stop.waits) and stop.waits[-1] > 8 * stop.waits[0]
    assert len([r for r in caplog.records if r.name == "gateway.workers.worker"]) == 1


def test_only_a_contact_neither_stored_nor_spooled_is_answered_503(
    down: Outage, tmp_path: Path
) -> None:
    (tmp_path / "var").write_text("")  # the spool's directory cannot be made: disk trouble
    down.cut()
    form = twilio_form("no tenemos gas hace 3 dias", sender="+5491155550205")
    assert post_twilio(down.client, form).status_code == 503  # Twilio's fallback URL takes it
    down.restore()
    assert post_twilio(down.client, form).status_code == 200


def test_a_keyword_during_an_outage_is_answered_by_sms_after_replay(down: Outage) -> None:
    form = twilio_form("no tenemos gas hace 3 dias", sender="+5491155550206")
    number = tracking_in(message(post_twilio(down.client, form)))
    down.cut()
    asked = post_twilio(down.client, twilio_form(f"ESTADO {number}", sender="+5491155550207"))
    assert asked.status_code == 200
    assert ET.fromstring(asked.text).find("Message") is None  # the registry is needed
    down.restore()
    down.replay()
    with Db(down.db_url) as db:
        assert len(db.cases()) == 1  # a status query opens nothing
        (answer,) = db.outbox()
        assert (answer.provider, answer.to_address) == ("twilio", "+5491155550207")
        assert tracking_in(answer.body) == number


def test_africas_talking_voice_request_finished_during_an_outage_is_kept(down: Outage) -> None:
    call = AtCall(down.client, "+5491155550208")
    call.start()
    call.press("1")
    call.press("4")
    down.cut()
    spoken = re.sub(r"\D", "", _said(call.record()))
    call.hang_up()
    down.restore()
    down.replay()
    with Db(down.db_url) as db:
        (case,) = db.cases()
        assert case.channel == "voice" and case.tracking_number in spoken


def test_a_spooled_record_that_cannot_be_replayed_becomes_a_dead_letter(down: Outage) -> None:
    """Replay moves a record it cannot store aside and goes on; operators see it as a dead
    letter (the console's "Mensajes sin guardar"), not only in the spool's rejected file."""
    down.cut()
    receipt = message(post_twilio(down.client, twilio_form("hay un pozo", "+5491155550231")))
    down.runtime.spool.append(
        lambda s: {"kind": "fax", "provider": "twilio", "provider_ref": "SMbroken", "text": "x"},
        provider="twilio",
        provider_ref="SMbroken",
    )
    down.restore()
    down.replay()
    with Db(down.db_url) as db:
        (case,) = db.cases()
        assert case.tracking_number == tracking_in(receipt)
    with make_engine(down.db_url).connect() as conn:
        rows = conn.execute(DeadLetter.__table__.select()).all()
    assert [(r.route, r.provider_ref) for r in rows] == [("spool", "SMbroken")]
    assert "unknown spool record kind" in rows[0].error
