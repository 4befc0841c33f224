"""The operators page (`/console/operators`): admins add operators, reset passwords, disable
and enable accounts, change roles and departments, and revoke API tokens.

Admins only. A supervisor gets 403 like an operator: accounts are an administrator's matter,
and a read-only list would show supervisors colleagues' phone numbers they have no use for.
Every change goes through `casestore.operators` (the same checks and audit events as the
`ventanilla operator` commands) and ends with a redirect whose page confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from casestore.cases import audit
from casestore.models import Role
from casestore.operators import (
    UNCHANGED,
    OperatorError,
    create_operator,
    edit_operator,
    find_operator,
    list_operators,
    list_tokens,
    revoke_token,
    set_active,
    set_password,
)
from gateway.console.auth import Viewer, language, login_required, render, runtime
from gateway.console.i18n import translator
from gateway.forms import BadRequest, form_id
from sms.phone import PhoneError, normalise_phone

ROLE_NAMES = {
    "es": {"operator": "Operador/a", "supervisor": "Supervisor/a", "admin": "Administrador/a"},
    "en": {"operator": "Operator", "supervisor": "Supervisor", "admin": "Administrator"},
}

# What the page says after each action (the redirect names the key, never free text).
DONE = {
    "es": {
        "added": "Operador/a {user} creado/a.",
        "edited": "Cambios guardados para {user}.",
        "unchanged": "No había nada que cambiar para {user}.",
        "password": "Contraseña de {user} cambiada; sus sesiones abiertas se cerraron.",
        "disabled": "{user} desactivado/a: ya no puede ingresar ni usar sus tokens.",
        "enabled": "{user} activado/a de nuevo.",
        "revoked": "Token {token} de {user} revocado.",
    },
    "en": {
        "added": "Operator {user} created.",
        "edited": "Changes saved for {user}.",
        "unchanged": "Nothing to change for {user}.",
        "password": "Password of {user} changed; their open sessions were ended.",
        "disabled": "{user} disabled: they can no longer log in nor use their tokens.",
        "enabled": "{user} enabled again.",
        "revoked": "Token {token} of {user} revoked.",
    },
}

# OperatorError codes (see casestore.operators) as the page says them.
PROBLEMS = {
    "es": {
        "too_short": "La contraseña debe tener al menos {n} caracteres.",
        "common": "Esa contraseña es demasiado común: elija otra menos previsible.",
        "user_name": "La contraseña no puede ser igual al nombre de usuario.",
        "differ": "Las dos contraseñas no coinciden.",
        "no_password": "Escriba una contraseña (dos veces).",
        "bad_username": "El usuario debe tener de 1 a 64 caracteres, sin espacios.",
        "unknown_role": "Elija un rol de la lista.",
        "unknown_department": "Elija áreas de la lista.",
        "exists": "Ya existe un operador con ese usuario.",
        "name_too_long": "El nombre puede tener hasta 200 caracteres.",
        "no_operator": "No encontramos ese operador.",
        "last_admin": "Es el último administrador activo: no puede desactivarse ni cambiar de rol.",
        "self": "No puede desactivar su propia cuenta ni quitarse el rol de administrador.",
        "no_token": "Ese token ya no está activo.",
        "bad_phone": "El teléfono no es válido: {detail}",
        "bad_action": "Acción desconocida.",
    },
    "en": {
        "too_short": "The password must have at least {n} characters.",
        "common": "That password is too common: choose a less predictable one.",
        "user_name": "The password must not be the user name.",
        "differ": "The two passwords differ.",
        "no_password": "Type a password (twice).",
        "bad_username": "The user name must have 1 to 64 characters, no spaces.",
        "unknown_role": "Choose a role from the list.",
        "unknown_department": "Choose departments from the list.",
        "exists": "An operator with that user name already exists.",
        "name_too_long": "The name may have up to 200 characters.",
        "no_operator": "We found no such operator.",
        "last_admin": "This is the last active admin: it cannot be disabled nor change role.",
        "self": "You cannot disable your own account nor drop your own admin role.",
        "no_token": "That token is no longer live.",
        "bad_phone": "The phone is not valid: {detail}",
        "bad_action": "Unknown action.",
    },
}


class Refused(Exception):
    """A form the page refuses (400), nothing changed; `code` is a key of PROBLEMS."""

    def __init__(self, code: str, **values: str) -> None:
        super().__init__(code)
        self.code = code
        self.values = values


def _problem(request: Request, code: str, **values: str) -> str:
    texts = PROBLEMS.get(language(request), PROBLEMS["es"])
    return texts.get(code, PROBLEMS["es"].get(code, code)).format(**values)


def _refusal(request: Request, exc: OperatorError | Refused) -> str:
    if isinstance(exc, Refused):
        return _problem(request, exc.code, **exc.values)
    n = str(runtime(request).config.login.password_min_length)
    return _problem(request, exc.code, n=n) if exc.code in PROBLEMS["es"] else str(exc)


def _field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _new_password(request: Request, form: FormData) -> str:
    password, repeated = _field(form, "password"), _field(form, "password2")
    if not password:
        raise Refused("no_password")
    if password != repeated:
        raise Refused("differ")
    return password


def _phone(request: Request, raw: str) -> str | None:
    if not raw.strip():
        return None
    try:
        return normalise_phone(raw, runtime(request).config.country)
    except PhoneError as exc:
        raise Refused("bad_phone", detail=str(exc)) from exc


def _departments(form: FormData) -> list[str]:
    return [v for v in form.getlist("department") if isinstance(v, str)]


@dataclass(frozen=True)
class Outcome:
    """Where to go after a change, and what the page then says."""

    user: str
    done: str
    token: str = ""

    def redirect(self) -> Response:
        query = f"?hecho={self.done}" + (f"&token={self.token}" if self.token else "")
        path = f"/console/operators/{quote(self.user, safe='')}"
        return RedirectResponse(path + query, status_code=303)


def _forbidden(request: Request) -> Response:
    t = translator(language(request))
    return render(request, "console/error.html", {"message": t("forbidden")}, 403)


def _labels(request: Request) -> dict[str, Any]:
    """Role and department names for the templates (names, never codes)."""
    lang = language(request)
    config = runtime(request).config
    return {
        "roles": ROLE_NAMES.get(lang, ROLE_NAMES["es"]),
        "departments": {code: d.label(lang) for code, d in config.departments.items()},
        "min_length": config.login.password_min_length,
    }


def _notice(request: Request, user: str) -> str | None:
    key = request.query_params.get("hecho", "")
    texts = DONE.get(language(request), DONE["es"])
    if key not in texts:
        return None
    token = request.query_params.get("token", "")
    return texts[key].format(user=user, token=token if token.isdigit() else "")


# ---------------------------------------------------------------- the list and the add form


def _list_context(request: Request, viewer: Viewer) -> dict[str, Any]:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        operators = list_operators(session, include_disabled=True)
        audit(session, viewer.username, "console.operators", "operator", "*")
    return {"operators": operators, "tz": rt.config.timezone}


def _add(request: Request, viewer: Viewer, form: FormData) -> Outcome:
    rt = runtime(request)
    username = _field(form, "username").strip()
    password = _new_password(request, form)
    phone = _phone(request, _field(form, "phone"))
    with rt.sessions() as session, session.begin():
        create_operator(
            session,
            username,
            _field(form, "role"),
            _departments(form),
            rt.config.departments.keys(),
            phone=phone,
            password=password,
            name=_field(form, "name"),
            min_password_length=rt.config.login.password_min_length,
            actor=viewer.username,
        )
    return Outcome(username, "added")


@login_required
async def operators_page(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    if viewer.role != Role.ADMIN.value:
        return _forbidden(request)
    error, status = None, 200
    values: dict[str, Any] = {}
    if request.method == "POST":
        form = await request.form()
        values = {k: _field(form, k) for k in ("username", "name", "role", "phone")}
        values["departments"] = _departments(form)
        try:
            outcome = await run_in_threadpool(_add, request, viewer, form)
        except (OperatorError, Refused) as exc:
            error, status = _refusal(request, exc), 400
        else:
            return outcome.redirect()
    context = await run_in_threadpool(_list_context, request, viewer)
    return render(
        request,
        "console/operators.html",
        {**context, **_labels(request), "error": error, "values": values},
        status,
    )


# ---------------------------------------------------------------- one operator


def _detail_context(request: Request, viewer: Viewer, username: str) -> dict[str, Any] | None:
    rt = runtime(request)
    with rt.sessions() as session, session.begin():
        try:
            operator = find_operator(session, username)
            tokens = list_tokens(session, username)
        except OperatorError:
            return None
        (summary,) = list_operators(session, include_disabled=True, username=operator.username)
        audit(session, viewer.username, "console.operator", "operator", username)
        return {
            "operator": summary,
            "phone": operator.phone or "",
            "tokens": tokens,
            "tz": rt.config.timezone,
        }


def _change(request: Request, viewer: Viewer, username: str, form: FormData) -> Outcome:
    """One change on one operator, by the form's `action`; Refused/OperatorError when the form
    is wrong (the transaction then rolls back: nothing changed)."""
    rt = runtime(request)
    action = _field(form, "action")
    with rt.sessions() as session, session.begin():
        operator = find_operator(session, username)
        if action == "edit":
            role = _field(form, "role")
            if operator.id == viewer.operator_id and role != operator.role:
                raise Refused("self")
            wanted = set(_departments(form))
            current = operator.department_codes
            changes = edit_operator(
                session,
                operator,
                rt.config.departments.keys(),
                actor=viewer.username,
                role=role,
                add_departments=sorted(wanted - current),
                remove_departments=sorted(current - wanted),
                phone=_phone(request, _field(form, "phone")) if "phone" in form else UNCHANGED,
                name=_field(form, "name") if "name" in form else UNCHANGED,
            )
            return Outcome(username, "edited" if changes else "unchanged")
        if action == "password":
            password = _new_password(request, form)
            min_length = rt.config.login.password_min_length
            set_password(session, operator, password, actor=viewer.username, min_length=min_length)
            return Outcome(username, "password")
        if action in ("disable", "enable"):
            if action == "disable" and operator.id == viewer.operator_id:
                raise Refused("self")
            set_active(session, operator, action == "enable", actor=viewer.username)
            return Outcome(username, f"{action}d")
        if action == "revoke":
            try:
                token_id = form_id({"token": _field(form, "token")}, "token")
            except BadRequest as exc:
                raise Refused("no_token") from exc
            revoke_token(session, token_id, actor=viewer.username, username=username)
            return Outcome(username, "revoked", str(token_id))
        raise Refused("bad_action")


@login_required
async def operator_page(request: Request) -> Response:
    viewer: Viewer = request.state.viewer
    if viewer.role != Role.ADMIN.value:
        return _forbidden(request)
    username = request.path_params["username"]
    error, status = None, 200
    if request.method == "POST":
        form = await request.form()
        try:
            outcome = await run_in_threadpool(_change, request, viewer, username, form)
        except (OperatorError, Refused) as exc:
            error, status = _refusal(request, exc), 400
            if isinstance(exc, OperatorError) and exc.code == "no_operator":
                status = 404
        else:
            return outcome.redirect()
    context = await run_in_threadpool(_detail_context, request, viewer, username)
    if context is None:
        message = _problem(request, "no_operator")
        return render(request, "console/error.html", {"message": message}, 404)
    notice = None if error else _notice(request, username)
    return render(
        request,
        "console/operator.html",
        {**context, **_labels(request), "error": error, "notice": notice},
        status,
    )


routes = [
    Route("/console/operators", operators_page, methods=["GET", "POST"]),
    Route("/console/operators/{username}", operator_page, methods=["GET", "POST"]),
]
