"""Operators, their departments, passwords and API tokens.

The command line and the console's operators page both change operators through the functions
here, so both apply the same checks (password policy, known departments, a last admin kept) and
write the same audit events (`actor` is who asked: a console user name, or "cli").
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from casestore.cases import audit
from casestore.models import ApiToken, ConsoleSession, Operator, OperatorDepartment, Role, utcnow

_hasher = PasswordHasher()

DEFAULT_MIN_PASSWORD_LENGTH = 10  # `[login] password_min_length` overrides it
COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.txt")


class OperatorError(ValueError):
    """A request about operators that cannot be done (unknown department, duplicate name…).
    The message is English (the command line's); `code` lets a page say it in its language."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


class PasswordRejected(OperatorError):
    """A password the policy refuses; `problem` is "too_short", "common" or "user_name"."""

    def __init__(self, problem: str, min_length: int) -> None:
        texts = {
            "too_short": f"password too short: at least {min_length} characters",
            "common": "password too common: choose one that is not on lists of usual passwords",
            "user_name": "password must not be the user name",
        }
        super().__init__(texts[problem], problem)
        self.problem = problem
        self.min_length = min_length


@cache
def _common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().casefold() for w in lines if w.strip() and not w.startswith("#"))


def password_problem(
    password: str, username: str, min_length: int = DEFAULT_MIN_PASSWORD_LENGTH
) -> str | None:
    """The one password policy: None when acceptable, else why not ("too_short", "common",
    "user_name"). Length counts characters, so "contraseña" is 10."""
    if len(password) < min_length:
        return "too_short"
    folded = password.strip().casefold()
    if folded in _common_passwords():
        return "common"
    if folded == username.strip().casefold():
        return "user_name"
    return None


def check_password(
    password: str, username: str, min_length: int = DEFAULT_MIN_PASSWORD_LENGTH
) -> None:
    """Raise PasswordRejected when `password_problem` finds one."""
    problem = password_problem(password, username, min_length)
    if problem is not None:
        raise PasswordRejected(problem, min_length)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _role_value(role: str) -> str:
    try:
        return Role(role).value
    except ValueError as exc:
        raise OperatorError(
            f"unknown role {role!r}: operator, supervisor or admin", "unknown_role"
        ) from exc


def _check_departments(codes: Collection[str], known_departments: Collection[str]) -> None:
    unknown = sorted(set(codes) - set(known_departments))
    if unknown:
        known = ", ".join(sorted(known_departments))
        raise OperatorError(
            f"unknown department {', '.join(unknown)}; known: {known}", "unknown_department"
        )


def check_new_operator(
    session: Session,
    username: str,
    role: str,
    departments: Collection[str],
    known_departments: Collection[str],
) -> str:
    """What `create_operator` checks before the password (so a command can refuse before it
    asks for one): returns the role's value, or raises OperatorError."""
    username = username.strip()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise OperatorError("user name must be 1-64 characters without spaces", "bad_username")
    role_value = _role_value(role)
    _check_departments(departments, known_departments)
    if session.scalar(select(Operator.id).where(Operator.username == username)) is not None:
        raise OperatorError(f"operator {username!r} already exists", "exists")
    return role_value


def create_operator(
    session: Session,
    username: str,
    role: str,
    departments: Collection[str],
    known_departments: Collection[str],
    *,
    phone: str | None = None,
    password: str | None = None,
    name: str | None = None,
    min_password_length: int = DEFAULT_MIN_PASSWORD_LENGTH,
    actor: str | None = None,
) -> Operator:
    """Add an operator; without a password the account can only use API tokens.
    With `actor`, the creation is audited as theirs."""
    username = username.strip()
    role_value = check_new_operator(session, username, role, departments, known_departments)
    if password is not None:
        check_password(password, username, min_password_length)
    operator = Operator(
        username=username,
        name=_clean_name(name),
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
    if actor is not None:
        detail: dict[str, object] = {"role": role_value, "departments": sorted(set(departments))}
        audit(session, actor, "operator.add", "operator", username, detail)
    return operator


def _clean_name(name: str | None) -> str | None:
    name = " ".join((name or "").split())
    if len(name) > 200:
        raise OperatorError("name must be at most 200 characters", "name_too_long")
    return name or None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, username: str) -> str:
    """A new bearer token for the operator; only its hash is stored."""
    operator = find_operator(session, username)
    token = "vt_" + secrets.token_urlsafe(32)
    session.add(ApiToken(operator_id=operator.id, token_hash=_digest(token), created_at=utcnow()))
    return token


# `last_used_at` is written at most this often per token: a busy integration would otherwise
# turn every read of the API into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def operator_for_token(session: Session, token: str) -> Operator | None:
    """The active operator owning this token, or None (a disabled operator's tokens open
    nothing). Notes when the token was last used."""
    row = session.scalar(
        select(ApiToken)
        .where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None))
        .options(selectinload(ApiToken.operator).selectinload(Operator.departments))
    )
    if row is None or not row.operator.active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
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


# ---------------------------------------------------------------- managing operators


def find_operator(session: Session, username: str) -> Operator:
    """The operator with this user name (departments loaded), or OperatorError."""
    operator = session.scalar(
        select(Operator)
        .where(Operator.username == username.strip())
        .options(selectinload(Operator.departments))
    )
    if operator is None:
        raise OperatorError(f"no operator named {username!r}", "no_operator")
    return operator


def _end_sessions(session: Session, operator: Operator) -> None:
    """Log the operator out of every open console session."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.operator_id == operator.id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def _keeps_an_admin(session: Session, operator: Operator) -> None:
    """Refuse to disable or demote the last active admin: nobody could manage operators."""
    if operator.role != Role.ADMIN.value or not operator.active:
        return
    others = session.scalar(
        select(func.count(Operator.id)).where(
            Operator.role == Role.ADMIN.value, Operator.active.is_(True), Operator.id != operator.id
        )
    )
    if not others:
        raise OperatorError(f"{operator.username!r} is the last active admin", "last_admin")


def set_password(
    session: Session,
    operator: Operator,
    password: str,
    *,
    actor: str,
    min_length: int = DEFAULT_MIN_PASSWORD_LENGTH,
) -> None:
    """Give the operator a new password (policy checked) and end their open console sessions:
    a reset is often because someone else may know the old one."""
    check_password(password, operator.username, min_length)
    operator.password_hash = hash_password(password)
    _end_sessions(session, operator)
    audit(session, actor, "operator.passwd", "operator", operator.username)


def set_active(session: Session, operator: Operator, active: bool, *, actor: str) -> bool:
    """Enable or disable an account; False when it already was. A disabled operator's console
    sessions end now, and neither their password nor their API tokens open anything."""
    if operator.active == active:
        return False
    if not active:
        _keeps_an_admin(session, operator)
        _end_sessions(session, operator)
        operator.availability = "away"  # nobody takes the next call as them
    operator.active = active
    action = "operator.enable" if active else "operator.disable"
    audit(session, actor, action, "operator", operator.username)
    return True


UNCHANGED: object = object()  # edit_operator: leave this field as it is


def edit_operator(
    session: Session,
    operator: Operator,
    known_departments: Collection[str],
    *,
    actor: str,
    role: str | None = None,
    add_departments: Collection[str] = (),
    remove_departments: Collection[str] = (),
    phone: str | None | object = UNCHANGED,
    name: str | None | object = UNCHANGED,
) -> dict[str, object]:
    """Change role, departments, phone (None removes it) or name; returns what changed (also
    the audit's detail). Everything is checked before anything changes."""
    changes: dict[str, object] = {}
    new_role = operator.role
    if role is not None and role != operator.role:
        new_role = _role_value(role)
        _keeps_an_admin(session, operator)
        changes["role"] = new_role
    _check_departments(set(add_departments) | set(remove_departments), known_departments)
    both = sorted(set(add_departments) & set(remove_departments))
    if both:
        raise OperatorError(
            f"department {', '.join(both)} both added and removed", "added_and_removed"
        )
    current = operator.department_codes
    wanted = (current | set(add_departments)) - set(remove_departments)
    new_name = _clean_name(name) if isinstance(name, str) or name is None else operator.name
    operator.role = new_role
    if wanted != current:
        changes["departments"] = sorted(wanted)
        operator.departments = [d for d in operator.departments if d.department in wanted] + [
            OperatorDepartment(department=code) for code in sorted(wanted - current)
        ]
    if (isinstance(phone, str) or phone is None) and phone != operator.phone:
        changes["phone"] = "removed" if phone is None else "changed"  # no number in the audit
        operator.phone = phone
    if new_name != operator.name:
        changes["name"] = new_name
        operator.name = new_name
    if changes:
        audit(session, actor, "operator.edit", "operator", operator.username, changes)
    return changes


@dataclass(frozen=True)
class OperatorSummary:
    """One row of the operator list."""

    username: str
    name: str | None
    role: str
    departments: tuple[str, ...]
    active: bool
    has_password: bool
    phone: str | None
    tokens: int  # live (not revoked) API tokens
    last_login: datetime | None


def list_operators(
    session: Session,
    *,
    department: str | None = None,
    include_disabled: bool = False,
    username: str | None = None,
) -> list[OperatorSummary]:
    """Operators by user name, with their live token count and last console log-in; only those
    in `department` when given, only active ones unless `include_disabled`, only `username`
    when given."""
    query = select(Operator).options(selectinload(Operator.departments))
    if username is not None:
        query = query.where(Operator.username == username)
    if department is not None:
        query = query.where(
            Operator.id.in_(
                select(OperatorDepartment.operator_id).where(
                    OperatorDepartment.department == department
                )
            )
        )
    if not include_disabled:
        query = query.where(Operator.active.is_(True))
    operators = list(session.scalars(query.order_by(Operator.username)))
    ids = [o.id for o in operators]
    # (A Result has .keys(): dict() would read it as a mapping, hence the comprehensions.)
    tokens = {
        operator_id: count
        for operator_id, count in session.execute(
            select(ApiToken.operator_id, func.count(ApiToken.id))
            .where(ApiToken.operator_id.in_(ids), ApiToken.revoked_at.is_(None))
            .group_by(ApiToken.operator_id)
        )
    }
    logins = {
        operator_id: at
        for operator_id, at in session.execute(
            select(ConsoleSession.operator_id, func.max(ConsoleSession.created_at))
            .where(ConsoleSession.operator_id.in_(ids))
            .group_by(ConsoleSession.operator_id)
        )
    }
    return [
        OperatorSummary(
            username=o.username,
            name=o.name,
            role=o.role,
            departments=tuple(sorted(o.department_codes)),
            active=o.active,
            has_password=o.password_hash is not None,
            phone=o.phone,
            tokens=tokens.get(o.id, 0),
            last_login=logins.get(o.id),
        )
        for o in operators
    ]


@dataclass(frozen=True)
class TokenSummary:
    """An API token as lists show it: never the token itself (only its hash is stored)."""

    id: int
    username: str
    created_at: datetime
    last_used_at: datetime | None


def list_tokens(session: Session, username: str | None = None) -> list[TokenSummary]:
    """Live (not revoked) API tokens, oldest first; only this operator's when given."""
    query = (
        select(ApiToken.id, Operator.username, ApiToken.created_at, ApiToken.last_used_at)
        .join(Operator, Operator.id == ApiToken.operator_id)
        .where(ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.id)
    )
    if username is not None:
        query = query.where(Operator.id == find_operator(session, username).id)
    return [TokenSummary(*row) for row in session.execute(query)]


def revoke_token(
    session: Session, token_id: int, *, actor: str, username: str | None = None
) -> TokenSummary:
    """Revoke one live token (of `username` when given, so a page cannot revoke another
    operator's token by changing the id); OperatorError when there is no such live token."""
    row = session.scalar(
        select(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .options(selectinload(ApiToken.operator))
    )
    if row is None or (username is not None and row.operator.username != username):
        raise OperatorError(f"no live API token with id {token_id}", "no_token")
    row.revoked_at = utcnow()
    audit(session, actor, "token.revoke", "operator", row.operator.username, {"token": row.id})
    return TokenSummary(row.id, row.operator.username, row.created_at, row.last_used_at)


def revoke_all_tokens(session: Session, username: str, *, actor: str) -> int:
    """Revoke every live token of the operator; returns how many."""
    operator = find_operator(session, username)
    ids = list(
        session.scalars(
            select(ApiToken.id).where(
                ApiToken.operator_id == operator.id, ApiToken.revoked_at.is_(None)
            )
        )
    )
    if ids:
        session.execute(update(ApiToken).where(ApiToken.id.in_(ids)).values(revoked_at=utcnow()))
        audit(session, actor, "token.revoke", "operator", operator.username, {"tokens": ids})
    return len(ids)
