"""`ventanilla operator add|passwd|list|disable|enable|edit` and `ventanilla token
create|list|revoke`: operator accounts and API tokens from the command line, through
`casestore.operators` (the checks and audit events the console's operators page uses too).
Messages are English, as the rest of the command; exit code 2 for anything refused."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from casestore.config import Config, load_config
from casestore.db import database_url, make_engine
from casestore.models import Role
from casestore.operators import (
    UNCHANGED,
    OperatorError,
    check_new_operator,
    check_password,
    create_operator,
    create_token,
    edit_operator,
    find_operator,
    list_operators,
    list_tokens,
    revoke_all_tokens,
    revoke_token,
    set_active,
    set_password,
)
from sms.phone import PhoneError, normalise_phone


def _session() -> Session:
    return Session(make_engine(database_url()))


CLI_ACTOR = "cli"  # who the audit names for changes made with this command


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _read_password(args: argparse.Namespace, username: str, min_length: int) -> str | None:
    """The new password from standard input (--password-stdin) or typed twice at a terminal;
    None with no terminal. Raises OperatorError when empty, different or refused by the policy."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise OperatorError("empty password on standard input")
    elif sys.stdin.isatty():
        print(f"(at least {min_length} characters, not a common password)", file=sys.stderr)
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat password: "):
            raise OperatorError("passwords differ")
    else:
        return None
    check_password(password, username, min_length)
    return password


def _phone(config: Config, raw: str) -> str:
    try:
        return normalise_phone(raw, config.country)
    except PhoneError as exc:
        raise OperatorError(f"--phone: {exc}") from exc


def cmd_operator_add(args: argparse.Namespace) -> int:
    config = load_config()
    min_length = config.login.password_min_length
    departments = args.department or []
    try:
        phone = _phone(config, args.phone) if args.phone else None
        with _session() as session:
            check_new_operator(session, args.user, args.role, departments, config.departments)
        password = None if args.token_only else _read_password(args, args.user, min_length)
    except OperatorError as exc:
        return _fail(str(exc))
    if password is None and not args.token_only:
        # shared/CONTRACT.md: with no terminal the account is made token-only. It can never
        # log in to the console until it gets a password, so never silently: say so and how.
        print(
            f"warning: no terminal to ask for a password, so {args.user} is a token-only "
            "account that cannot log in to the console; give it a password with "
            f"`ventanilla operator passwd {args.user} --password-stdin` (or pass --password-stdin "
            "now; --token-only says a token-only account is what you want)",
            file=sys.stderr,
        )
    with _session() as session, session.begin():
        try:
            create_operator(
                session,
                args.user,
                args.role,
                departments,
                config.departments.keys(),
                phone=phone,
                password=password,
                name=args.name,
                min_password_length=min_length,
                actor=CLI_ACTOR,
            )
        except OperatorError as exc:
            return _fail(str(exc))
    kind = "with a password" if password else "token-only (no password)"
    print(f"operator {args.user} created ({args.role}, {kind})")
    return 0


def cmd_operator_passwd(args: argparse.Namespace) -> int:
    min_length = load_config().login.password_min_length
    try:
        with _session() as session:
            find_operator(session, args.user)  # before anyone types a password for nobody
        password = _read_password(args, args.user, min_length)
        if password is None:
            return _fail("no terminal to ask for the password: give it with --password-stdin")
        with _session() as session, session.begin():
            operator = find_operator(session, args.user)
            set_password(session, operator, password, actor=CLI_ACTOR, min_length=min_length)
    except OperatorError as exc:
        return _fail(str(exc))
    print(f"password of {args.user} changed; their console sessions were ended")
    return 0


def _when(moment: datetime | None, config: Config) -> str:
    return moment.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M") if moment else "never"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def cmd_operator_list(args: argparse.Namespace) -> int:
    config = load_config()
    if args.department and args.department not in config.departments:
        known = ", ".join(config.departments)
        return _fail(f"unknown department {args.department}; known: {known}")
    with _session() as session:
        operators = list_operators(session, department=args.department, include_disabled=args.all)
    # Department names as the deployment writes them (its default language): the names
    # people know, where a code like NAF means little.
    lang = config.default_language
    rows = [
        (
            o.username,
            o.name or "-",
            o.role,
            "; ".join(
                config.departments[d].label(lang) if d in config.departments else d
                for d in o.departments
            )
            or ("(all)" if o.role == "admin" else "-"),
            "active" if o.active else "disabled",
            "yes" if o.has_password else "no",
            str(o.tokens),
            _when(o.last_login, config),
        )
        for o in operators
    ]
    if not rows:
        print("no operators" + ("" if args.all else " (disabled ones are hidden: --all)"))
        return 0
    header = ("USER", "NAME", "ROLE", "DEPARTMENTS", "STATE", "PASSWORD", "TOKENS", "LAST LOG-IN")
    print(_table(header, rows))
    return 0


def _cmd_set_active(args: argparse.Namespace, active: bool) -> int:
    with _session() as session, session.begin():
        try:
            changed = set_active(
                session, find_operator(session, args.user), active, actor=CLI_ACTOR
            )
        except OperatorError as exc:
            return _fail(str(exc))
    state = "enabled" if active else "disabled"
    print(
        f"operator {args.user} {state}" if changed else f"operator {args.user} was already {state}"
    )
    return 0


def cmd_operator_disable(args: argparse.Namespace) -> int:
    return _cmd_set_active(args, False)


def cmd_operator_enable(args: argparse.Namespace) -> int:
    return _cmd_set_active(args, True)


def cmd_operator_edit(args: argparse.Namespace) -> int:
    config = load_config()
    changes: dict[str, object] = {}
    with _session() as session, session.begin():
        try:
            phone: str | None | object = UNCHANGED
            if args.no_phone:
                phone = None
            elif args.phone:
                phone = _phone(config, args.phone)
            changes = edit_operator(
                session,
                find_operator(session, args.user),
                config.departments.keys(),
                actor=CLI_ACTOR,
                role=args.role,
                add_departments=args.add_department or (),
                remove_departments=args.remove_department or (),
                phone=phone,
                name=args.name if args.name is not None else UNCHANGED,
            )
        except OperatorError as exc:
            return _fail(str(exc))
    if not changes:
        print(f"operator {args.user}: nothing to change")
    else:
        print(f"operator {args.user} changed: {', '.join(changes)}")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    with _session() as session, session.begin():
        try:
            token = create_token(session, args.user)
        except OperatorError as exc:
            return _fail(str(exc))
    print(f"API token for {args.user}: {token}")
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    config = load_config()
    with _session() as session:
        try:
            tokens = list_tokens(session, args.user)
        except OperatorError as exc:
            return _fail(str(exc))
    if not tokens:
        print("no API tokens")
        return 0
    rows = [
        (str(t.id), t.username, _when(t.created_at, config), _when(t.last_used_at, config))
        for t in tokens
    ]
    print(_table(("ID", "OPERATOR", "CREATED", "LAST USED"), rows))
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    if (args.token_id is None) == (args.all is None):
        return _fail("give either a TOKEN_ID or --all USER")
    with _session() as session, session.begin():
        try:
            if args.all is not None:
                count = revoke_all_tokens(session, args.all, actor=CLI_ACTOR)
                message = f"{count} API token(s) of {args.all} revoked"
            else:
                token = revoke_token(session, args.token_id, actor=CLI_ACTOR)
                message = f"API token {token.id} of {token.username} revoked"
        except OperatorError as exc:
            return _fail(str(exc))
    print(message)
    return 0


ROLES = [role.value for role in Role]


def _operator_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    op = sub.add_parser("operator", help="manage operators (console and API accounts)")
    op_sub = op.add_subparsers(dest="operator_command", required=True)
    password_help = "read the password from the first line of standard input"
    add = op_sub.add_parser(
        "add",
        help="create an operator",
        description="Create an operator. The password is asked for at a terminal; without "
        "one give --password-stdin. With neither, the account is token-only (API tokens, no "
        "console log-in) and a warning says how to give it a password later; --token-only "
        "makes such an account without the warning.",
    )
    add.add_argument("user", help="the log-in name (1-64 characters, no spaces)")
    add.add_argument("--role", required=True, choices=ROLES, help="what the operator may do")
    add.add_argument(
        "--department",
        action="append",
        metavar="CODE",
        help="a department whose cases they see (repeat for several; admins see all)",
    )
    add.add_argument("--phone", metavar="E164", help="the phone that rings for live calls")
    add.add_argument("--name", help="the person's name, shown in operator lists")
    how = add.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help=password_help)
    how.add_argument(
        "--token-only",
        action="store_true",
        help="no password: the account can use API tokens but never log in to the console",
    )
    add.set_defaults(func=cmd_operator_add)

    passwd = op_sub.add_parser(
        "passwd", help="set a new password (ends the operator's console sessions)"
    )
    passwd.add_argument("user", help="the operator's log-in name")
    passwd.add_argument("--password-stdin", action="store_true", help=password_help)
    passwd.set_defaults(func=cmd_operator_passwd)

    listing = op_sub.add_parser("list", help="show operators as a table")
    listing.add_argument("--department", metavar="CODE", help="only operators of this department")
    listing.add_argument("--all", action="store_true", help="include disabled operators")
    listing.set_defaults(func=cmd_operator_list)

    for name, func, text in (
        ("disable", cmd_operator_disable, "stop an operator: no log-in, no API; sessions end"),
        ("enable", cmd_operator_enable, "let a disabled operator log in and use tokens again"),
    ):
        sp = op_sub.add_parser(name, help=text)
        sp.add_argument("user", help="the operator's log-in name")
        sp.set_defaults(func=func)

    edit = op_sub.add_parser("edit", help="change an operator's role, departments, phone or name")
    edit.add_argument("user", help="the operator's log-in name")
    edit.add_argument("--role", choices=ROLES, help="the new role")
    edit.add_argument(
        "--add-department", action="append", metavar="CODE", help="add a department (repeatable)"
    )
    edit.add_argument(
        "--remove-department",
        action="append",
        metavar="CODE",
        help="remove a department (repeatable)",
    )
    phone = edit.add_mutually_exclusive_group()
    phone.add_argument("--phone", metavar="E164", help="the phone that rings for live calls")
    phone.add_argument("--no-phone", action="store_true", help="remove the operator's phone")
    edit.add_argument("--name", help="the person's name (empty removes it)")
    edit.set_defaults(func=cmd_operator_edit)


def _token_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tp = sub.add_parser("token", help="manage API tokens")
    tp_sub = tp.add_subparsers(dest="token_command", required=True)
    create = tp_sub.add_parser("create", help="print a new API token for an operator")
    create.add_argument("user", help="the operator the token acts as")
    create.set_defaults(func=cmd_token_create)
    listing = tp_sub.add_parser(
        "list", help="show live API tokens (id, operator, created, last used; never the token)"
    )
    listing.add_argument("user", nargs="?", help="only this operator's tokens")
    listing.set_defaults(func=cmd_token_list)
    revoke = tp_sub.add_parser("revoke", help="revoke a token by id, or all of an operator's")
    revoke.add_argument("token_id", nargs="?", type=int, help="the id `token list` shows")
    revoke.add_argument("--all", metavar="USER", help="revoke every token of this operator")
    revoke.set_defaults(func=cmd_token_revoke)


def add_account_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `operator` and `token` commands, on the `ventanilla` parser's subcommands."""
    _operator_parsers(sub)
    _token_parsers(sub)
