"""A database outage seen from outside: `ventanilla serve` processes, signed webhooks over HTTP.

PostgreSQL sits behind a TCP proxy the test cuts and restores under load; a gateway holding
spooled contacts is killed with SIGKILL and a new one replays them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _truncate_pg
from tests.faults import TcpProxy
from tests.gateway.test_ussd import tracking_in
from tests.helpers import Db, at_form, twilio_form
from tests.test_blackbox import AT_TOKEN, Server, env, free_port, message, ventanilla

pytestmark = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning"
)
START_TIMEOUT = 30.0
DRAIN_TIMEOUT = 60.0


@contextmanager
def serving(tmp: Path, db_url: str, spool: Path, name: str) -> Iterator[tuple[Server, int]]:
    """A gateway process on a free port; yields the server and its pid; stops it after."""
    port = free_port()
    environment = env(tmp, db_url, port) | {
        "VENTANILLA__SPOOL__DIR": str(spool),
        "VENTANILLA__SPOOL__REPLAY_SECONDS": "0.2",
    }
    log = tmp / f"{name}.log"
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
        with httpx.Client(base_url=base_url, timeout=20.0) as http:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                assert process.poll() is None, "server exited:\n" + log.read_text()
                try:
                    http.get("/healthz", timeout=10.0)  # answers 503 while the database is down
                    break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "no /healthz:\n" + log.read_text()
                time.sleep(0.1)
            yield Server(base_url, db_url, log, http), process.pid
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def drained(server: Server) -> dict[str, object]:
    """Wait (bounded) until the gateway says every spooled contact is stored."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        health: dict[str, object] = server.http.get("/healthz").json()
        if health["status"] == "ok" and health["spooled"] == 0:
            return health
        assert time.monotonic() < deadline, f"spool not replayed: {health}\n{server.output()}"
        time.sleep(0.2)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    _truncate_pg(pg_database)
    return pg_database


def proxied(url: str, proxy: TcpProxy) -> str:
    return make_url(url).set(port=proxy.port).render_as_string(hide_password=False)


def test_postgresql_cut_under_load_loses_no_acknowledged_contact(
    pg_url: str, tmp_path: Path
) -> None:
    target = make_url(pg_url)
    total, cut_at, restore_at = 80, 20, 50
    with (
        TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy,
        serving(tmp_path, proxied(pg_url, proxy), tmp_path / "spool", "gateway") as (server, _),
    ):
        sent = threading.Lock()
        count = [0]

        def send(i: int) -> tuple[str, str, int, str | None]:
            with sent:
                count[0] += 1
                if count[0] == cut_at:
                    proxy.cut()
                elif count[0] == restore_at:
                    proxy.restore()
            phone = f"+54911555503{i:02d}"
            if i % 2 == 0:
                form = twilio_form(f"pedido {i}: sin agua en el barrio", sender=phone)
                answer = server.sms(form)
                number = tracking_in(message(answer)) if answer.status_code == 200 else None
                return "twilio", form["MessageSid"], answer.status_code, number
            at = at_form(f"pedido {i}: sin luz en el barrio", sender=phone)
            answer = server.at_sms(at, AT_TOKEN)
            return "africastalking", at["id"], answer.status_code, None

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(send, range(total)))
        drained(server)

    acknowledged = [r for r in results if r[2] == 200]
    assert len(acknowledged) == total, [r for r in results if r[2] != 200]
    with Db(pg_url) as db:
        inbound = [i for i in db.interactions() if i.direction == "in"]
        stored = Counter((i.provider, i.provider_ref) for i in inbound)
        assert all(stored[(provider, ref)] == 1 for provider, ref, _, _ in acknowledged)
        assert len(inbound) == total
        numbers = {c.id: c.tracking_number for c in db.cases()}
        assert len(numbers) == total  # one case each, none twice
        case_of = {(i.provider, i.provider_ref): i.case_id for i in inbound}
        for provider, ref, _, number in acknowledged:
            case_id = case_of[(provider, ref)]
            assert case_id is not None
            if number is not None:
                assert numbers[case_id] == number
        # The cut really happened mid-run: some numbers came from the spool, some not.
        assert any(n.startswith("9") for n in numbers.values())
        assert any(not n.startswith("9") for n in numbers.values())


def _take_down(db_url: str, tmp: Path) -> tuple[str, object]:
    """Make the database unreachable for a gateway about to start; returns its URL and what
    `_bring_back` needs."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        shutil.move(path, tmp / "away.db")
        path.mkdir()  # the gateway cannot open it
        return db_url, path
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.cut()
    return proxied(db_url, proxy), proxy


def _bring_back(tmp: Path, handle: object) -> None:
    if isinstance(handle, TcpProxy):
        handle.restore()
    else:
        assert isinstance(handle, Path)
        handle.rmdir()
        shutil.move(tmp / "away.db", handle)


def test_a_gateway_killed_with_spooled_contacts_has_them_replayed_by_the_next(
    db_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    app_url, handle = _take_down(db_url, tmp_path)
    try:
        with serving(tmp_path, app_url, spool, "first") as (server, pid):
            form = twilio_form("se inunda la casa", sender="+5491155550401")
            number = tracking_in(message(server.sms(form)))
            at = at_form("no llega la tarjeta alimentar", sender="+5491155550402")
            assert server.at_sms(at, AT_TOKEN).status_code == 200
            assert server.http.get("/healthz").json()["spooled"] == 2
            os.kill(pid, signal.SIGKILL)
        _bring_back(tmp_path, handle)
        with serving(tmp_path, app_url, spool, "second") as (server, _):
            drained(server)
            # Twilio retries the webhook after the crash: answered from the registry.
            assert tracking_in(message(server.sms(form))) == number
    finally:
        if isinstance(handle, TcpProxy):
            handle.close()
    with Db(db_url) as db:
        cases = db.cases()
        assert len(cases) == 2
        assert number in {c.tracking_number for c in cases}
        (receipt,) = db.outbox()  # Africa's Talking's receipt, queued once at replay
        assert receipt.to_address == "+5491155550402"
