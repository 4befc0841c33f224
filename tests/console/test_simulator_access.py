"""Who may use the simulator (it writes cases and shows any phone's conversation): someone at
the machine itself when the gateway listens on loopback, or a logged-in operator; nobody when
a real provider is configured, and `serve` refuses to start when it is forced on with one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from casestore.config import Config
from gateway.app import create_app
from gateway.settings import Settings, load_settings
from tests.conftest import LOCAL_CLIENT, PUBLIC_URL, app_env
from tests.console.conftest import log_in
from tests.helpers import counts

PHONE = "+5491155550341"
SIMULATOR_PAGES = ("/simulator", "/simulator/ussd", "/simulator/call", "/simulator/voice")
Make = Callable[..., TestClient]


@pytest.fixture
def make(db_url: str, redis_url: str, config: Config) -> Iterator[Make]:
    """Apps with the given bind address and environment, asked from the given peer."""
    opened: list[TestClient] = []

    def build(
        host: str = "127.0.0.1", peer: tuple[str, int] = LOCAL_CLIENT, **env: str
    ) -> TestClient:
        settings = load_settings(app_env(db_url, redis_url, **env), host=host)
        client = TestClient(create_app(settings, config), base_url=PUBLIC_URL, client=peer)
        client.__enter__()
        opened.append(client)
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


def send(client: TestClient, text: str = "Necesito mercaderia", **headers: str) -> int:
    response = client.post(
        "/simulator",
        data={"phone": PHONE, "text": text},
        headers=headers,
        follow_redirects=False,
    )
    return response.status_code


def test_on_loopback_from_loopback_it_is_open_as_make_run_needs(make: Make, db_url: str) -> None:
    local = make()
    assert send(local) == 303
    assert "Necesito mercaderia" in local.get(f"/simulator?phone={PHONE}").text
    assert all(local.get(path).status_code == 200 for path in SIMULATOR_PAGES)
    assert local.get("/", follow_redirects=False).headers["location"] == "/simulator"


@pytest.mark.parametrize(
    "header",
    ["X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"],
)
def test_a_request_passed_on_by_a_proxy_is_refused(make: Make, db_url: str, header: str) -> None:
    local = make()
    send(local, "Necesito chapas")  # a conversation to hide
    before = counts(db_url)
    value = "for=203.0.113.9" if header == "Forwarded" else "203.0.113.9"
    assert send(local, **{header: value}) == 403
    seen = local.get(f"/simulator?phone={PHONE}", headers={header: value})
    assert seen.status_code == 403 and "chapas" not in seen.text
    assert counts(db_url) == before


def test_another_machine_is_refused_and_sees_no_conversation(make: Make, db_url: str) -> None:
    make().post("/simulator", data={"phone": PHONE, "text": "Necesito chapas"})
    before = counts(db_url)
    remote = make(peer=("203.0.113.9", 40000))
    for path in SIMULATOR_PAGES:
        response = remote.get(f"{path}?phone={PHONE}")
        assert response.status_code == 403 and "chapas" not in response.text, path
    assert send(remote) == 403
    assert remote.post("/simulator/ussd", data={"phone": PHONE}).status_code == 403
    assert counts(db_url) == before
    assert remote.get("/", follow_redirects=False).status_code == 200  # no redirect to it


def test_on_a_public_bind_only_a_logged_in_operator_may_use_it(
    make: Make, db_url: str, add_operator: Callable[..., str]
) -> None:
    public = make(host="0.0.0.0", peer=("127.0.0.1", 40000))  # even a loopback peer
    assert send(public) == 403
    add_operator("ana")
    log_in(public, "ana")
    assert send(public) == 303
    assert "Necesito mercaderia" in public.get(f"/simulator?phone={PHONE}").text


@pytest.mark.parametrize(
    "env",
    [
        {"VENTANILLA_SMS_PROVIDER": "twilio"},
        {"VENTANILLA_VOICE_PROVIDER": "twilio"},
        {"VENTANILLA_SMS_PROVIDER": "africastalking"},
        {"VENTANILLA_VOICE_PROVIDER": "africastalking"},
    ],
)
def test_never_with_a_real_provider_even_for_an_operator(
    make: Make, db_url: str, add_operator: Callable[..., str], env: dict[str, str]
) -> None:
    local = make(**env)
    for path in SIMULATOR_PAGES:
        assert local.get(path).status_code == 404, path
    add_operator("ana")
    log_in(local, "ana")
    before = counts(db_url)
    assert send(local) == 404
    assert counts(db_url) == before


def test_forced_on_it_is_still_only_local_and_forced_off_it_is_off(make: Make) -> None:
    assert send(make(VENTANILLA_SIMULATOR="1", peer=("203.0.113.9", 40000))) == 403
    assert send(make(VENTANILLA_SIMULATOR="0")) == 404


def test_settings_refuse_a_simulator_forced_on_with_a_real_provider(settings: Settings) -> None:
    env = {"VENTANILLA_SIMULATOR": "1", "VENTANILLA_VOICE_PROVIDER": "africastalking"}
    forced = load_settings(env)
    with pytest.raises(ValueError, match="VENTANILLA_SIMULATOR is on but a real provider"):
        forced.check()
    load_settings({"VENTANILLA_SIMULATOR": "1"}).check()  # outbox only: fine


def test_serve_exits_with_code_2_when_forced_on_with_a_real_provider(tmp_path: Path) -> None:
    ventanilla = Path(sys.executable).parent / "ventanilla"
    result = subprocess.run(
        [str(ventanilla), "serve", "--port", "0"],
        env={
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            "HOME": str(tmp_path),
            "VENTANILLA_DATABASE_URL": f"sqlite:///{tmp_path}/v.db",
            "VENTANILLA_SIMULATOR": "1",
            "VENTANILLA_SMS_PROVIDER": "twilio",
        },
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "VENTANILLA_SIMULATOR is on but a real provider is configured (twilio)" in result.stderr
