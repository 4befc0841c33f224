"""The `ventanilla` console script, run as an administrator runs it: a real subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, selectinload
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.db import make_engine
from casestore.models import Operator
from gateway.app import create_app
from gateway.settings import load_settings
from tests.conftest import PUBLIC_URL, app_env
from tests.helpers import post_twilio, twilio_form

TIMEOUT = 60


def ventanilla_path() -> str:
    found = shutil.which("ventanilla", path=str(Path(sys.executable).parent))
    return found or str(Path(sys.executable).parent / "ventanilla")


def run(
    workdir: Path,
    db_url: str,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`ventanilla ARGS` with a minimal environment (plus `env`) and no terminal on standard
    input."""
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(workdir),
        "VENTANILLA_DATABASE_URL": db_url,
        **(env or {}),
    }
    return subprocess.run(
        [ventanilla_path(), *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=TIMEOUT,
        check=False,
    )


def operator(db_url: str, username: str) -> Operator | None:
    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            return s.scalar(
                select(Operator)
                .where(Operator.username == username)
                .options(selectinload(Operator.departments))
            )
    finally:
        engine.dispose()


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def migrated(sqlite_url: str) -> str:
    """A SQLite file already migrated (`migrate` itself is tested below)."""
    return sqlite_url


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path, fresh_sqlite: str) -> None:
    first = run(tmp_path, fresh_sqlite, "migrate")
    assert first.returncode == 0, first.stderr
    second = run(tmp_path, fresh_sqlite, "migrate")
    assert second.returncode == 0, second.stderr

    engine = make_engine(fresh_sqlite)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert {"cases", "contacts", "operators", "api_tokens", "audit_events"} <= tables
    assert len(versions) == 1
    assert not (tmp_path / "var").exists()  # the configured database, not the default one


def test_migrate_on_a_migrated_postgresql_database(tmp_path: Path, pg_database: str) -> None:
    # Given as plain postgresql:// (the contract accepts it; the app picks its driver).
    url = make_url(pg_database).set(drivername="postgresql")
    result = run(tmp_path, url.render_as_string(hide_password=False), "migrate")
    assert result.returncode == 0, result.stderr


def test_operator_add_with_a_password_on_stdin(tmp_path: Path, migrated: str) -> None:
    result = run(
        tmp_path,
        migrated,
        *("operator", "add", "ana", "--role", "operator", "--department", "ALIM"),
        "--password-stdin",
        stdin="pan-con-manteca-42\n",
    )
    assert result.returncode == 0, result.stderr
    assert "ana" in result.stdout
    assert "pan-con-manteca-42" not in result.stdout + result.stderr

    ana = operator(migrated, "ana")
    assert ana is not None
    assert ana.role == "operator"
    assert ana.department_codes == {"ALIM"}
    assert ana.password_hash is not None
    assert PasswordHasher().verify(ana.password_hash, "pan-con-manteca-42")


def test_operator_add_with_several_departments_and_a_phone(tmp_path: Path, migrated: str) -> None:
    result = run(
        tmp_path,
        migrated,
        *("operator", "add", "beto", "--role", "supervisor"),
        *("--department", "ALIM", "--department", "GEN"),
        *("--phone", "011 15 5555-0005", "--token-only"),
    )
    assert result.returncode == 0, result.stderr
    beto = operator(migrated, "beto")
    assert beto is not None
    assert beto.department_codes == {"ALIM", "GEN"}
    assert beto.phone == "+5491155550005"


def test_without_a_terminal_a_token_only_account_is_made_and_said_so(
    tmp_path: Path, migrated: str
) -> None:
    # shared/CONTRACT.md: no terminal and no --password-stdin makes a token-only account. It
    # cannot log in to the console, so the command says so and how to give it a password.
    result = run(tmp_path, migrated, "operator", "add", "robot", "--role", "admin")
    assert result.returncode == 0, result.stderr
    assert "token-only (no password)" in result.stdout
    assert "cannot log in to the console" in result.stderr
    assert "ventanilla operator passwd robot --password-stdin" in result.stderr
    robot = operator(migrated, "robot")
    assert robot is not None and robot.password_hash is None
    # ... and it can be fixed: a password later, and the console log-in works.
    fixed = run(
        tmp_path, migrated, "operator", "passwd", "robot", "--password-stdin",
        stdin="una clave larga de prueba\n",
    )  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr
    robot = operator(migrated, "robot")
    assert robot is not None and robot.password_hash is not None


def test_token_only_makes_an_account_without_a_password(tmp_path: Path, migrated: str) -> None:
    result = run(tmp_path, migrated, "operator", "add", "robot", "--role", "admin", "--token-only")
    assert result.returncode == 0, result.stderr
    assert "token-only" in result.stdout
    robot = operator(migrated, "robot")
    assert robot is not None
    assert robot.password_hash is None
    assert robot.role == "admin"


def test_operator_add_refuses_what_it_cannot_do(tmp_path: Path, migrated: str) -> None:
    unknown = run(
        tmp_path,
        migrated,
        *("operator", "add", "ana", "--role", "operator", "--department", "ALIMENTOS"),
    )
    assert unknown.returncode != 0
    assert "ALIMENTOS" in unknown.stderr
    assert "department" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert operator(migrated, "ana") is None

    created = run(
        tmp_path, migrated, "operator", "add", "ana", "--role", "operator", "--token-only"
    )
    assert created.returncode == 0, created.stderr
    duplicate = run(tmp_path, migrated, "operator", "add", "ana", "--role", "admin")
    assert duplicate.returncode != 0
    assert "ana" in duplicate.stderr
    assert "exists" in duplicate.stderr
    ana = operator(migrated, "ana")
    assert ana is not None and ana.role == "operator"  # the first account is untouched

    empty = run(
        tmp_path, migrated, "operator", "add", "eva", "--role", "operator", "--password-stdin",
        stdin="\n",
    )  # fmt: skip
    assert empty.returncode != 0
    assert "password" in empty.stderr
    assert operator(migrated, "eva") is None

    bad_phone = run(
        tmp_path, migrated, "operator", "add", "eva", "--role", "operator", "--phone", "12"
    )
    assert bad_phone.returncode != 0
    assert "--phone" in bad_phone.stderr

    bad_role = run(tmp_path, migrated, "operator", "add", "eva", "--role", "jefe")
    assert bad_role.returncode != 0
    assert "jefe" in bad_role.stderr
    assert operator(migrated, "eva") is None


def test_an_unmigrated_database_is_a_one_line_error(tmp_path: Path, fresh_sqlite: str) -> None:
    result = run(tmp_path, fresh_sqlite, "token", "create", "ana")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "migrate" in result.stderr


def test_token_create_prints_a_token_that_opens_the_api(
    tmp_path: Path, db_url: str, redis_url: str, config: Config
) -> None:
    added = run(
        tmp_path,
        db_url,
        *("operator", "add", "ana", "--role", "operator", "--department", "ALIM", "--token-only"),
    )
    assert added.returncode == 0, added.stderr
    first = run(tmp_path, db_url, "token", "create", "ana")
    second = run(tmp_path, db_url, "token", "create", "ana")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    token = first.stdout.split()[-1]
    other = second.stdout.split()[-1]
    assert token != other
    assert len(token) >= 32

    app = create_app(load_settings(app_env(db_url, redis_url)), config)
    with TestClient(app, base_url=PUBLIC_URL) as client:
        food = post_twilio(client, twilio_form("no me llego la tarjeta alimentar"))
        urgent = post_twilio(client, twilio_form("me pega mi pareja", sender="+5491155550002"))
        assert food.status_code == urgent.status_code == 200
        for bearer in (token, other):
            response = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {bearer}"})
            assert response.status_code == 200, response.text
            assert [c["department"] for c in response.json()["items"]] == ["ALIM"]
        refused = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}x"})
        assert refused.status_code == 401


def test_token_create_for_nobody_is_an_error(tmp_path: Path, migrated: str) -> None:
    result = run(tmp_path, migrated, "token", "create", "nobody")
    assert result.returncode != 0
    assert "nobody" in result.stderr
    assert "vt_" not in result.stdout
