"""Console fixtures: operators with passwords in given departments, and a logged-in client."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.db import make_engine
from casestore.operators import create_operator

PASSWORD = "clave-de-prueba-1"


@pytest.fixture
def add_operator(db_url: str, config: Config) -> Callable[..., str]:
    def add(username: str, role: str = "operator", departments: tuple[str, ...] = ("ALIM",)) -> str:
        engine = make_engine(db_url)
        with Session(engine) as session, session.begin():
            create_operator(
                session, username, role, departments, config.departments.keys(), password=PASSWORD
            )
        engine.dispose()
        return username

    return add


def log_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in and return the CSRF token of the session."""
    response = client.post(
        "/console/login", data={"username": username, "password": password}, follow_redirects=True
    )
    assert response.status_code == 200, response.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match, "no CSRF token on the page after log-in"
    return match.group(1)
