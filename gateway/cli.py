"""The `ventanilla` command: migrate, serve, worker, run, and operator and token accounts."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from casestore.config import ConfigError, load_config
from casestore.db import database_url, make_engine
from gateway.operator_cli import add_account_parsers
from gateway.settings import load_settings

# Query strings carry the AT token and, on the API, phone numbers: none of it reaches a log.
_QUERY = re.compile(r"\?[^\s\"]*")


class RedactSecrets(logging.Filter):
    """Access logs show paths: drop their query strings (secrets, personal data)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY.sub("?[redacted]", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _QUERY.sub("?[redacted]", record.msg)
        return True


def cmd_migrate(_: argparse.Namespace) -> int:
    # Alembic is imported here only: it is most of the start-up time of the other commands.
    from casestore.migrations import upgrade

    url = database_url()
    upgrade(url)
    print("schema is up to date")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app

    settings = load_settings(host=args.host, port=args.port)
    settings.check()
    app = create_app(settings, load_config(env=settings.env))
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info")
    for name in ("uvicorn.access", "uvicorn.error", ""):
        logging.getLogger(name).addFilter(RedactSecrets())
    uvicorn.Server(config).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from gateway.redisconn import connect
    from gateway.rediskeys import keys_for_config
    from gateway.workers.worker import run_burst, run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    config = load_config(env=settings.env)
    engine = make_engine(settings.database_url)
    connection = connect(settings.redis_url, keys_for_config(config.raw))
    if args.burst:
        moved = run_burst(engine, connection, config, settings.sms_provider)
        print(f"worker: {moved} outbox messages dispatched")
        return 0
    run_forever(engine, connection, config=config, sms_provider=settings.sms_provider)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Gateway and worker together: what `make run` starts on the embedded default."""
    from gateway.redisconn import connect

    settings = load_settings(host=args.host, port=args.port)
    settings.check()
    connect(settings.redis_url).ping()  # start the embedded Redis before the worker joins it
    worker = subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"])
    print(f"Ventanilla on http://{args.host}:{args.port}/  (simulator: /simulator)", flush=True)
    try:
        return cmd_serve(args)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ventanilla", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(func=cmd_migrate)
    for name, func, text in (
        ("serve", cmd_serve, "run the HTTP gateway"),
        ("run", cmd_run, "run the gateway and a worker together"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--host", default="127.0.0.1", help="address to listen on")
        sp.add_argument("--port", type=int, default=8000, help="port to listen on")
        sp.set_defaults(func=func)
    wp = sub.add_parser("worker", help="run the background worker")
    wp.add_argument("--burst", action="store_true", help="do what is due now, then exit")
    wp.set_defaults(func=cmd_worker)
    add_account_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        # One line, not a traceback: the usual causes are a missing migration or a database
        # that is down, and the driver's first line says which.
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        print(
            f"error: database: {type(exc.orig).__name__}: {reason} "
            "(is it reachable, and has `ventanilla migrate` been run?)",
            file=sys.stderr,
        )
        return 1
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
