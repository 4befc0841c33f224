"""Managing operators and tokens from the command line: `ventanilla operator passwd|list|
disable|enable|edit` and `ventanilla token list|revoke`, run as real subprocesses."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from casestore.config import Config
from casestore.db import make_engine
from casestore.models import ApiToken, AuditEvent
from gateway.app import create_app
from gateway.cli import parser
from gateway.settings import load_settings
from tests.conftest import PUBLIC_URL, app_env
from tests.console.conftest import log_in
from tests.test_cli import operator, run

PASSWORD = "pan-con-manteca-42"


@pytest.fixture
def migrated(sqlite_url: str) -> str:
    """A SQLite file already migrated."""
    return sqlite_url


def add(workdir: Path, db_url: str, user: str, *args: str, password: str = PASSWORD) -> None:
    result = run(
        workdir, db_url, "operator", "add", user, *args, "--password-stdin", stdin=password + "\n"
    )
    assert result.returncode == 0, result.stderr


def row(table: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first` (columns: two spaces or more)."""
    for line in table.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{table}")


def audit_actions(db_url: str) -> list[tuple[str, str, str]]:
    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            rows = s.execute(
                select(AuditEvent.actor, AuditEvent.action, AuditEvent.target_id).order_by(
                    AuditEvent.id
                )
            )
            return list(rows)
    finally:
        engine.dispose()


def test_list_edit_disable_enable_and_passwd(tmp_path: Path, db_url: str) -> None:
    add(tmp_path, db_url, "ana", "--role", "operator", "--department", "ALIM", "--name", "Ana Paz")
    add(tmp_path, db_url, "root", "--role", "admin", password="raiz-de-prueba-7")
    robot = run(tmp_path, db_url, "operator", "add", "robot", "--role", "operator",
                "--department", "NAF", "--token-only")  # fmt: skip
    assert robot.returncode == 0, robot.stderr
    for _ in range(2):
        assert run(tmp_path, db_url, "token", "create", "robot").returncode == 0

    listed = run(tmp_path, db_url, "operator", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["USER", "NAME", "ROLE"]
    assert row(listed.stdout, "ana") == [
        "ana", "Ana Paz", "operator", "Asistencia Alimentaria", "active", "yes", "0", "never",
    ]  # fmt: skip
    assert row(listed.stdout, "robot") == [
        "robot", "-", "operator", "Niñez, Adolescencia y Familia", "active", "no", "2", "never",
    ]  # fmt: skip

    only_naf = run(tmp_path, db_url, "operator", "list", "--department", "NAF").stdout
    assert "robot" in only_naf and "ana" not in only_naf

    edited = run(tmp_path, db_url, "operator", "edit", "ana", "--role", "supervisor",
                 "--add-department", "GEN", "--remove-department", "ALIM",
                 "--phone", "011 15 5555-0007", "--name", "Ana María Paz")  # fmt: skip
    assert edited.returncode == 0, edited.stderr
    ana = operator(db_url, "ana")
    assert ana is not None
    assert (ana.role, ana.department_codes, ana.phone, ana.name) == (
        "supervisor", {"GEN"}, "+5491155550007", "Ana María Paz",
    )  # fmt: skip
    assert run(tmp_path, db_url, "operator", "edit", "ana", "--no-phone").returncode == 0
    ana = operator(db_url, "ana")
    assert ana is not None and ana.phone is None

    disabled = run(tmp_path, db_url, "operator", "disable", "ana")
    assert disabled.returncode == 0, disabled.stderr
    assert "disabled" in disabled.stdout
    ana = operator(db_url, "ana")
    assert ana is not None and not ana.active
    hidden = run(tmp_path, db_url, "operator", "list").stdout
    assert "ana" not in hidden
    shown = run(tmp_path, db_url, "operator", "list", "--all").stdout
    assert row(shown, "ana")[4] == "disabled"
    assert run(tmp_path, db_url, "operator", "enable", "ana").returncode == 0
    ana = operator(db_url, "ana")
    assert ana is not None and ana.active

    passwd = run(tmp_path, db_url, "operator", "passwd", "ana", "--password-stdin",
                 stdin="otra-clave-larga-9\n")  # fmt: skip
    assert passwd.returncode == 0, passwd.stderr
    ana = operator(db_url, "ana")
    assert ana is not None and ana.password_hash is not None
    assert PasswordHasher().verify(ana.password_hash, "otra-clave-larga-9")

    actions = [(actor, action) for actor, action, target in audit_actions(db_url)
               if target == "ana"]  # fmt: skip
    assert actions == [
        ("cli", "operator.add"),
        ("cli", "operator.edit"),
        ("cli", "operator.edit"),
        ("cli", "operator.disable"),
        ("cli", "operator.enable"),
        ("cli", "operator.passwd"),
    ]


def test_token_list_and_revoke(tmp_path: Path, db_url: str) -> None:
    for user in ("ana", "beto"):
        made = run(tmp_path, db_url, "operator", "add", user, "--role", "operator",
                   "--department", "ALIM", "--token-only")  # fmt: skip
        assert made.returncode == 0, made.stderr
    secrets = [
        run(tmp_path, db_url, "token", "create", user).stdout.split()[-1]
        for user in ("ana", "ana", "beto")
    ]
    listed = run(tmp_path, db_url, "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["ID", "OPERATOR", "CREATED", "LAST", "USED"]
    assert len(listed.stdout.splitlines()) == 4
    assert not any(secret in listed.stdout for secret in secrets)
    assert "vt_" not in listed.stdout
    of_beto = run(tmp_path, db_url, "token", "list", "beto").stdout.splitlines()
    assert len(of_beto) == 2 and of_beto[1].split()[1] == "beto"
    beto_id = of_beto[1].split()[0]

    revoked = run(tmp_path, db_url, "token", "revoke", beto_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "beto" in revoked.stdout
    again = run(tmp_path, db_url, "token", "revoke", beto_id)
    assert again.returncode == 2 and beto_id in again.stderr
    all_of_ana = run(tmp_path, db_url, "token", "revoke", "--all", "ana")
    assert all_of_ana.returncode == 0, all_of_ana.stderr
    assert "2 API token(s) of ana revoked" in all_of_ana.stdout
    assert "no API tokens" in run(tmp_path, db_url, "token", "list").stdout
    neither = run(tmp_path, db_url, "token", "revoke")
    assert neither.returncode == 2 and "--all" in neither.stderr

    engine = make_engine(db_url)
    with Session(engine) as s:
        assert all(row.revoked_at is not None for row in s.scalars(select(ApiToken)))
    engine.dispose()
    assert [a for _, a, _ in audit_actions(db_url)].count("token.revoke") == 2


def test_the_password_policy_refuses_and_nothing_changes(tmp_path: Path, migrated: str) -> None:
    for password, says in [
        ("corta-1", "at least 10 characters"),
        ("contraseña", "too common"),
        ("Ventanilla123", "too common"),  # case does not matter
        ("mariana.lopez", "user name"),
    ]:
        refused = run(tmp_path, migrated, "operator", "add", "mariana.lopez", "--role",
                      "operator", "--password-stdin", stdin=password + "\n")  # fmt: skip
        assert refused.returncode == 2, password
        assert says in refused.stderr, refused.stderr
        assert operator(migrated, "mariana.lopez") is None

    add(tmp_path, migrated, "ana", "--role", "operator")
    before = operator(migrated, "ana")
    refused = run(tmp_path, migrated, "operator", "passwd", "ana", "--password-stdin",
                  stdin="123456789\n")  # fmt: skip
    assert refused.returncode == 2
    assert "too" in refused.stderr
    no_terminal = run(tmp_path, migrated, "operator", "passwd", "ana")
    assert no_terminal.returncode == 2
    assert "--password-stdin" in no_terminal.stderr
    after = operator(migrated, "ana")
    assert before is not None and after is not None
    assert after.password_hash == before.password_hash


def test_the_minimum_length_comes_from_the_login_section(tmp_path: Path, migrated: str) -> None:
    longer = {"VENTANILLA__LOGIN__PASSWORD_MIN_LENGTH": "16"}
    refused = run(tmp_path, migrated, "operator", "add", "ana", "--role", "operator",
                  "--password-stdin", stdin="pan-con-manteca\n", env=longer)  # fmt: skip
    assert refused.returncode == 2
    assert "at least 16 characters" in refused.stderr
    assert operator(migrated, "ana") is None

    # Under 8 characters would be no policy at all: the configuration is refused.
    weak = {"VENTANILLA__LOGIN__PASSWORD_MIN_LENGTH": "4"}
    refused = run(tmp_path, migrated, "operator", "add", "ana", "--role", "operator",
                  "--password-stdin", stdin="pan-con-manteca\n", env=weak)  # fmt: skip
    assert refused.returncode == 2
    assert "login.password_min_length must be a whole number from 8 to 128" in refused.stderr
    assert operator(migrated, "ana") is None


def test_what_cannot_be_done_is_refused(tmp_path: Path, migrated: str) -> None:
    add(tmp_path, migrated, "root", "--role", "admin")
    last = run(tmp_path, migrated, "operator", "disable", "root")
    assert last.returncode == 2 and "last active admin" in last.stderr
    demote = run(tmp_path, migrated, "operator", "edit", "root", "--role", "operator")
    assert demote.returncode == 2 and "last active admin" in demote.stderr
    root = operator(migrated, "root")
    assert root is not None and root.active and root.role == "admin"

    for args, says in [
        (("operator", "disable", "nadie"), "nadie"),
        (("operator", "edit", "root", "--add-department", "XYZ"), "XYZ"),
        (("operator", "edit", "root", "--phone", "12"), "--phone"),
        (("operator", "list", "--department", "XYZ"), "XYZ"),
        (("token", "list", "nadie"), "nadie"),
        (("token", "revoke", "--all", "nadie"), "nadie"),
    ]:
        result = run(tmp_path, migrated, *args)
        assert result.returncode == 2, args
        assert says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_a_disabled_operator_is_locked_out_of_console_and_api(
    tmp_path: Path, db_url: str, redis_url: str, config: Config
) -> None:
    add(tmp_path, db_url, "ana", "--role", "operator", "--department", "ALIM")
    token = run(tmp_path, db_url, "token", "create", "ana").stdout.split()[-1]
    bearer = {"Authorization": f"Bearer {token}"}
    app = create_app(load_settings(app_env(db_url, redis_url)), config)
    with TestClient(app, base_url=PUBLIC_URL) as client:
        log_in(client, "ana", PASSWORD)
        assert client.get("/api/v1/cases", headers=bearer).status_code == 200
        assert client.get("/console", follow_redirects=False).status_code == 200

        assert run(tmp_path, db_url, "operator", "disable", "ana").returncode == 0
        # The open session ends at once, the token opens nothing, the password neither.
        assert client.get("/console", follow_redirects=False).status_code == 303
        assert client.get("/api/v1/cases", headers=bearer).status_code == 401
        again = client.post("/console/login", data={"username": "ana", "password": PASSWORD})
        assert again.status_code == 401

        assert run(tmp_path, db_url, "operator", "enable", "ana").returncode == 0
        assert client.get("/api/v1/cases", headers=bearer).status_code == 200
        log_in(client, "ana", PASSWORD)

    assert row(run(tmp_path, db_url, "token", "list", "ana").stdout, "1")[3] != "never"
    assert row(run(tmp_path, db_url, "operator", "list").stdout, "ana")[7] != "never"


def _actions(p: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found: list[tuple[str, argparse.Action]] = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += [(f"{name} {where}", a) for where, a in _actions(child)]
        elif not isinstance(action, argparse._HelpAction):
            found.append((p.prog, action))
    return found


def test_help_describes_every_option(tmp_path: Path) -> None:
    undocumented = [
        f"{where}: {action.dest}" for where, action in _actions(parser()) if not action.help
    ]
    assert undocumented == []
    text = run(tmp_path, "sqlite://", "operator", "add", "--help").stdout
    assert "--token-only" in text and "never log in" in " ".join(text.split())
