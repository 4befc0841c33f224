"""Log-in back-off per (client address, user) and per address: failures from one address never
lock the user out from another; the language switch and forms never take a foreign URL or a
non-number id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from casestore.config import Config, LoginLimits
from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import PUBLIC_URL
from tests.console.conftest import PASSWORD, log_in

Clients = Callable[[str], TestClient]
ATTACKER = "203.0.113.66"  # documentation addresses (RFC 5737)
OFFICE = "198.51.100.10"


@pytest.fixture
def from_address(settings: Settings, config: Config) -> Iterator[Clients]:
    """TestClients on one app, each seen by the server as coming from the address given."""
    app = create_app(settings, replace(config, login=LoginLimits(3, 5, 15)))
    with TestClient(app, base_url=PUBLIC_URL, client=("192.0.2.1", 1000)):
        made: dict[str, TestClient] = {}

        def make(address: str) -> TestClient:
            if address not in made:
                made[address] = TestClient(app, base_url=PUBLIC_URL, client=(address, 40000))
            return made[address]

        yield make


def attempt(client: TestClient, user: str, password: str) -> int:
    response = client.post(
        "/console/login", data={"username": user, "password": password}, follow_redirects=False
    )
    return response.status_code


def test_failures_from_another_address_never_lock_the_user_out(
    from_address: Clients, add_operator: Callable[..., str]
) -> None:
    add_operator("supA", role="supervisor")
    attacker, office = from_address(ATTACKER), from_address(OFFICE)
    assert [attempt(attacker, "supA", "mala") for _ in range(3)] == [401, 401, 401]
    assert attempt(attacker, "supA", PASSWORD) == 429  # this address waits, right or wrong
    assert attempt(office, "supA", PASSWORD) == 303  # the operator at the office gets in
    assert attempt(office, "supA", "mala") == 401  # and the office has its own count


def test_an_address_guessing_many_users_is_throttled_as_a_whole(
    from_address: Clients, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    attacker = from_address(ATTACKER)
    codes = [attempt(attacker, f"user{i}", "mala") for i in range(5)]
    assert codes == [401] * 5
    assert attempt(attacker, "ana", PASSWORD) == 429  # over 5 failures from this address
    assert attempt(from_address(OFFICE), "ana", PASSWORD) == 303


def test_a_good_log_in_clears_only_that_users_count(
    from_address: Clients, add_operator: Callable[..., str]
) -> None:
    add_operator("ana")
    add_operator("beto")
    office = from_address(OFFICE)
    for _ in range(2):
        assert attempt(office, "ana", "mala") == 401
    assert attempt(office, "ana", PASSWORD) == 303
    for _ in range(2):
        assert attempt(office, "ana", "mala") == 401  # counted again from zero: not locked
    # The address count is not cleared by a good log-in: 5 failures so far from this address.
    assert attempt(office, "beto", "mala") == 401
    assert attempt(office, "beto", PASSWORD) == 429


@pytest.mark.parametrize(
    ("referer", "location"),
    [
        ("https://evil.example/console", "/console"),
        ("https://evil.example/x?/console", "/console"),
        ("//evil.example/console/cases", "/console"),
        ("/\\evil.example/console", "/console"),
        ("https://ventanilla.example.test.evil.example/console", "/console"),
        ("/consolex", "/console"),
        ("", "/console"),
        (f"{PUBLIC_URL}/console/cases/1234567890?x=1", "/console/cases/1234567890?x=1"),
        ("/console/scores?by=channel", "/console/scores?by=channel"),
    ],
)
def test_language_switch_goes_back_only_to_a_console_page_of_this_site(
    client: TestClient, referer: str, location: str
) -> None:
    response = client.get("/console/language", headers={"referer": referer}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == location


def test_a_callback_id_that_is_not_a_number_is_400_with_a_reason(
    client: TestClient, add_operator: Callable[..., str]
) -> None:
    add_operator("sofia", role="supervisor")
    csrf = log_in(client, "sofia")
    for bad in ("abc", "-1", "0", "1e3", "99999999999999999999999", "１２"):
        response = client.post(
            "/console/callbacks", data={"csrf_token": csrf, "id": bad, "outcome": "reached"}
        )
        assert response.status_code == 400, bad
        assert "id must be a whole number" in response.text


def test_assigning_to_an_operator_id_that_is_not_a_number_is_400(
    client: TestClient, add_operator: Callable[..., str]
) -> None:
    from tests.helpers import post_twilio, twilio_form

    reply = post_twilio(client, twilio_form("Necesito mercaderia", sender="+5491155550331")).text
    import re

    number = "".join(re.search(r"(\d{4}) (\d{4}) (\d{2})", reply).groups())  # type: ignore[union-attr]
    add_operator("sofia", role="supervisor")
    csrf = log_in(client, "sofia")
    response = client.post(
        f"/console/cases/{number}",
        data={"csrf_token": csrf, "action": "assign", "operator_id": "abc"},
    )
    assert response.status_code == 400
    assert "operator_id must be a whole number" in response.text
