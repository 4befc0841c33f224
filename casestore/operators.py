"""Operators, their departments and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from casestore.models import ApiToken, ConsoleSession, Operator, OperatorDepartment, Role, utcnow

_hasher = PasswordHasher()


class OperatorError(ValueError):
    """A request about operators that cannot be done (unknown department, duplicate name…)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_operator(
    session: Session,
    username: str,
    role: str,
    departments: Collection[str],
    known_departments: Collection[str],
    *,
    phone: str | None = None,
    password: str | None = None,
) -> Operator:
    """Add an operator; without a password the account can only use API tokens."""
    username = username.strip()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise OperatorError("user name must be 1-64 characters without spaces")
    try:
        role_value = Role(role).value
    except ValueError as exc:
        raise OperatorError(f"unknown role {role!r}: operator, supervisor or admin") from exc
    unknown = sorted(set(departments) - set(known_departments))
    if unknown:
        known = ", ".join(sorted(known_departments))
        raise OperatorError(f"unknown department {', '.join(unknown)}; known: {known}")
    if session.scalar(select(Operator.id).where(Operator.username == username)) is not None:
        raise OperatorError(f"operator {username!r} already exists")
    operator = Operator(
        username=username,
        role=role_value,
        phone=phone,
        password_hash=hash_password(password) if password else None,
        active=True,
        created_at=utcnow(),
    )
    operator.departments = [
        OperatorDepartment(department=code) for code in sorted(set(departments))
    ]
    session.add(operator)
    return operator


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, username: str) -> str:
    """A new bearer token for the operator; only its hash is stored."""
    operator = session.scalar(select(Operator).where(Operator.username == username))
    if operator is None:
        raise OperatorError(f"no operator named {username!r}")
    token = "vt_" + secrets.token_urlsafe(32)
    session.add(ApiToken(operator_id=operator.id, token_hash=_digest(token), created_at=utcnow()))
    return token


def operator_for_token(session: Session, token: str) -> Operator | None:
    """The active operator owning this token, or None."""
    row = session.scalar(
        select(ApiToken)
        .where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None))
        .options(selectinload(ApiToken.operator).selectinload(Operator.departments))
    )
    if row is None or not row.operator.active:
        return None
    return row.operator


def operator_departments(operator: Operator) -> set[str] | None:
    """The departments whose cases the operator may see; None means all (admin)."""
    return None if operator.sees_all() else operator.department_codes


SESSION_LIFETIME_HOURS = 12


def verify_password(session: Session, operator: Operator, password: str) -> bool:
    """Check a password; upgrade the stored hash when argon2's parameters changed."""
    from argon2.exceptions import InvalidHashError, VerificationError

    if not operator.password_hash or not operator.active:
        return False
    try:
        _hasher.verify(operator.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(operator.password_hash):
        operator.password_hash = _hasher.hash(password)
    return True


def start_console_session(session: Session, operator: Operator) -> tuple[str, ConsoleSession]:
    """A new browser session: returns the cookie token (only its hash is stored)."""
    from datetime import timedelta

    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = ConsoleSession(
        token_hash=_digest(token),
        operator_id=operator.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=SESSION_LIFETIME_HOURS),
    )
    session.add(row)
    session.flush()
    return token, row


def console_session_for(session: Session, token: str) -> ConsoleSession | None:
    """The live session for a cookie token, with its operator and departments loaded."""
    row = session.scalar(
        select(ConsoleSession)
        .where(ConsoleSession.token_hash == _digest(token), ConsoleSession.ended_at.is_(None))
        .options(selectinload(ConsoleSession.operator).selectinload(Operator.departments))
    )
    now = utcnow()
    if row is None or row.expires_at <= now or not row.operator.active:
        return None
    row.last_seen_at = now
    return row


def end_console_session(session: Session, token: str) -> None:
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
