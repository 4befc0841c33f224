"""Operators, their departments and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from casestore.models import ApiToken, Operator, OperatorDepartment, Role, utcnow

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
