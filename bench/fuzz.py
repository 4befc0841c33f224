"""Fuzz run: random bodies to every webhook route of a served gateway; no 5xx, no contact lost.

    .venv/bin/python -m bench.fuzz [--bodies 100000] [--db sqlite|postgresql|both] [--seed N]

Starts the real gateway (`bench.serve_app real`, one uvicorn worker) on 127.0.0.1 on a fresh
SQLite file and/or a fresh PostgreSQL database, and posts `--bodies` random bodies to the
webhook routes (half of them to the two inbound-SMS routes): real-shaped provider forms with
fields dropped, changed and added, NUL and other controls, lone surrogates and invalid UTF-8,
now and then one over 64 KiB. Twilio bodies are signed (over the fields as the gateway parses
them) and Africa's Talking ones carry the token, so they reach the handlers. Afterwards every
inbound SMS answered 200 is looked up by its provider id among the stored inbound messages
(or the dead letters). The report: bodies sent, answers by status, 5xx (must be 0), contacts
lost (must be 0). Exits 1 when either is not 0. Not a test: bounded by --bodies and --seconds.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote_from_bytes

from bench.intake import (
    DEFAULT_PG_ADMIN,
    DEFAULT_REDIS,
    HOST,
    Target,
    create_pg_database,
    drop_pg_database,
    free_port,
    migrate,
    pg_url,
    start_server,
    stop_server,
)

TWILIO_TOKEN = "bench-fuzz-twilio"
AT_TOKEN = "bench-fuzz-at"
SMS_ROUTES = ("/webhooks/twilio/sms", "/webhooks/africastalking/sms")
HOSTILE = (
    "", "1", "0", "98", "00", "5", "ESTADO 4821330752", "BAJA", "\x00", "@\x00@", "\ud800",
    "\udfff x", "ñandú 😀", "\x1b[31m", "a\r\nb", "\t", "%00", "&=", "+", "x" * 300,
)  # fmt: skip
WORDS = (
    "hola", "no", "me", "llega", "la", "tarjeta", "alimentar", "chapas", "techo", "agua",
    "luz", "violencia", "ayuda", "pedido", "comedor", "gas", "@", "\x00", "ñ", "á",
)  # fmt: skip
TWILIO_EXTRA = (
    "MessageSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MessageStatus", "ErrorCode",
    "CallSid", "CallStatus", "Digits", "SpeechResult", "RecordingUrl", "Direction",
)  # fmt: skip
AT_EXTRA = (
    "id", "from", "to", "text", "sessionId", "phoneNumber", "serviceCode", "status",
    "failureReason", "isActive", "callerNumber", "dtmfDigits", "direction", "recordingUrl",
)  # fmt: skip
QUERY_KEYS = ("step", "rec", "d", "dept", "urgent", "c", "survey", "queue")


# ---------------------------------------------------------------- bodies
class Bodies:
    """Random bodies from one seed: (path, query, body bytes, headers)."""

    def __init__(self, seed: int, paths: Sequence[str], public_url: str) -> None:
        self.rng = random.Random(seed)
        self.paths = list(paths)
        self.public_url = public_url
        self.serial = 0

    def phone(self) -> str:
        return f"+54911555{self.rng.randrange(50000, 60000):05d}"

    def text(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return rng.choice(HOSTILE)
        if roll < 0.25:
            return "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(1, 20)))
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 12)))

    def value(self, name: str) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return rng.randbytes(rng.randrange(0, 10))  # invalid UTF-8 included
        if roll < 0.25 and name.lower() in ("from", "to", "phonenumber", "callernumber"):
            return rng.choice((self.phone(), "ACME", "", "+12", "1155550000")).encode()
        return self.text().encode("utf-8", "surrogatepass")

    def base(self, path: str) -> dict[str, str]:
        self.serial += 1
        ref = f"{self.serial:08d}{self.rng.getrandbits(48):012x}"
        if "/twilio/" in path:
            return {
                "ToCountry": "AR",
                "ToState": "",
                "SmsMessageSid": "SM" + ref,
                "NumMedia": "0",
                "ToCity": "",
                "SmsSid": "SM" + ref,
                "Body": self.text(),
                "To": "+5491155559999",
                "ToZip": "",
                "MessageSid": "SM" + ref,
                "AccountSid": "AC" + "b" * 32,
                "From": self.phone(),
                "ApiVersion": "2010-04-01",
                "CallSid": "CA" + ref,
                "CallStatus": "in-progress",
                "MessageStatus": "delivered",
            }
        phone = self.phone()
        return {
            "id": "ATXid_" + ref,
            "sessionId": "ATUid_" + ref,
            "from": phone,
            "phoneNumber": phone,
            "callerNumber": phone,
            "to": "22384",
            "text": self.text(),
            "serviceCode": "*384*123#",
            "networkCode": "72207",
            "linkId": "",
            "date": "2026-12-04 15:00:00",
            "isActive": "1",
            "status": "Success",
            "direction": "Inbound",
        }

    def one(self) -> tuple[str, bytes, dict[str, str]]:
        rng = self.rng
        path = rng.choice(SMS_ROUTES) if rng.random() < 0.5 else rng.choice(self.paths)
        fields: list[tuple[bytes, bytes]] = []
        for name, value in self.base(path).items():
            roll = rng.random()
            if roll < 0.04:
                continue
            raw = self.value(name) if roll < 0.12 else value.encode("utf-8", "surrogatepass")
            fields.append((name.encode(), raw))
        extra = TWILIO_EXTRA if "/twilio/" in path else AT_EXTRA
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            name = rng.choice(extra)
            fields.append((name.encode(), self.value(name)))
        if rng.random() < 0.02:
            fields.append((rng.randbytes(4), rng.randbytes(6)))
        if rng.random() < 0.003:
            fields.append((b"Body", b"x" * 70_000))  # over 64 KiB: 413
        body = b"&".join(quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode()
                         for k, v in fields)  # fmt: skip
        query = "&".join(
            f"{rng.choice(QUERY_KEYS)}={rng.choice(('0', '1', '2', 'ALIM', '%00', '%FF'))}"
            for _ in range(rng.choice((0, 0, 1, 2)))
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if "/africastalking/" in path:
            query = "&".join(q for q in (f"token={AT_TOKEN}", query) if q)
        url = path + (f"?{query}" if query else "")
        if "/twilio/" in path:
            from gateway.providers.twilio import compute_signature

            parsed = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            signed_url = self.public_url + path + (f"?{query}" if query else "")
            headers["X-Twilio-Signature"] = compute_signature(TWILIO_TOKEN, signed_url, parsed)
        return url, body, headers


def expected_ref(path: str, body: bytes) -> tuple[str, str] | None:
    """(provider, provider id) the gateway stores for an inbound SMS it answered 200, derived
    by the gateway's own cleaning and parsing; None when it is not one."""
    from gateway.clean_input import clean_form, form_needs_cleaning
    from gateway.forms import BadRequest, parse_form
    from gateway.providers import africastalking, twilio

    data = clean_form(body) if form_needs_cleaning(body) else body
    try:
        form = parse_form(data, "application/x-www-form-urlencoded")
        parse = twilio.parse_sms if "/twilio/" in path else africastalking.parse_sms
        inbound = parse(form, datetime.now(UTC), "AR")
    except BadRequest:
        return None
    return inbound.provider, inbound.provider_ref


# ---------------------------------------------------------------- the run
@dataclass
class Tally:
    sent: int = 0
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    by_route_5xx: collections.Counter[str] = field(default_factory=collections.Counter)
    acknowledged: set[tuple[str, str]] = field(default_factory=set)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def drive(target: Target, total: int, seed: int, paths: Sequence[str], threads: int,
          seconds: float) -> Tally:  # fmt: skip
    tally = Tally()
    public_url = f"http://{HOST}:{target.port}"
    bodies = Bodies(seed, paths, public_url)
    source_lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, target.port, timeout=30)
        while time.monotonic() < deadline:
            with source_lock:
                if tally.sent >= total:
                    break
                tally.sent += 1
                url, body, headers = bodies.one()
            path = url.split("?", 1)[0]
            try:
                conn.request("POST", url, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection(HOST, target.port, timeout=30)
                with tally.lock:
                    tally.errors[type(exc).__name__] += 1
                continue
            ref = expected_ref(path, body) if status == 200 and path in SMS_ROUTES else None
            with tally.lock:
                tally.by_status[status] += 1
                if status >= 500:
                    tally.by_route_5xx[path] += 1
                if ref is not None:
                    tally.acknowledged.add(ref)
        conn.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return tally


def stored_refs(database_url: str) -> set[tuple[str, str]]:
    """(provider, provider id) of every stored inbound message and dead letter."""
    from sqlalchemy import text

    from casestore.db import make_engine

    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT provider, provider_ref FROM interactions WHERE direction = 'in' "
                "UNION SELECT provider, provider_ref FROM dead_letters"
            )
        ).all()
    engine.dispose()
    return {(str(p), str(r)) for p, r in rows if r is not None}


def webhook_paths(env: dict[str, str]) -> list[str]:
    """Every webhook route of the app, read off the app itself."""
    from starlette.routing import Route

    from casestore.config import load_config
    from gateway.app import create_app
    from gateway.settings import load_settings

    settings = load_settings(env)
    app = create_app(settings, load_config(env=env))
    return sorted(
        r.path for r in app.routes if isinstance(r, Route) and r.path.startswith("/webhooks/")
    )


def run_one(name: str, args: argparse.Namespace, workdir: Path) -> bool:
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VENTANILLA_", "TWILIO_", "AT_"))
    }
    port = free_port()
    pg_name = f"ventanilla_fuzz_{os.getpid()}"
    if name == "sqlite":
        url = f"sqlite:///{workdir / 'fuzz.db'}"
    else:
        create_pg_database(args.pg_admin_url, pg_name)
        url = pg_url(args.pg_admin_url, pg_name)
    env = dict(
        base_env,
        PYTHONUNBUFFERED="1",
        VENTANILLA_DATABASE_URL=url,
        VENTANILLA_REDIS_URL=args.redis_url,
        VENTANILLA_PUBLIC_URL=f"http://{HOST}:{port}",
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        TWILIO_ACCOUNT_SID="AC" + "b" * 32,
        VENTANILLA_AT_WEBHOOK_TOKEN=AT_TOKEN,
        VENTANILLA_SMS_PROVIDER="twilio",
        VENTANILLA_SIMULATOR="0",
        VENTANILLA__STORAGE__VAR_DIR=str(workdir / "var"),
    )
    target = Target(name, port, env, database_url=url)
    try:
        migrate(env)
        start_server(target, workdir)
        paths = webhook_paths(env)
        started = time.monotonic()
        tally = drive(target, args.bodies, args.seed, paths, args.threads, args.seconds)
        elapsed = time.monotonic() - started
        stop_server(target)
        stored = stored_refs(url)
        lost = tally.acknowledged - stored
        server_errors = sum(n for status, n in tally.by_status.items() if status >= 500)
        rate = tally.sent / elapsed
        print(
            f"\n== {name}: {tally.sent} bodies in {elapsed:.1f} s ({rate:.0f}/s), seed {args.seed}"
        )
        print(f"   webhook routes: {len(paths)}")
        for status, count in sorted(tally.by_status.items()):
            print(f"   {status}: {count}")
        if tally.errors:
            print(f"   connection errors: {dict(tally.errors)}")
        print(
            f"   5xx: {server_errors}" + (f" {dict(tally.by_route_5xx)}" if server_errors else "")
        )
        print(f"   inbound SMS acknowledged (200): {len(tally.acknowledged)}")
        print(f"   contacts lost: {len(lost)}")
        for provider, ref in sorted(lost)[:10]:
            print(f"     lost: {provider} {ref!r}")
        if tally.sent < args.bodies:
            print(f"   stopped by --seconds after {tally.sent} of {args.bodies} bodies")
        return server_errors == 0 and not lost and not tally.errors
    finally:
        stop_server(target)
        if name == "postgresql":
            try:
                drop_pg_database(args.pg_admin_url, pg_name)
            except Exception as exc:
                print(f"fuzz: could not drop database {pg_name}: {exc}", file=sys.stderr)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.fuzz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bodies", type=int, default=100_000, help="bodies per database")
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=16, help="client connections")
    p.add_argument("--seconds", type=float, default=1200.0, help="time bound per database")
    p.add_argument(
        "--pg-admin-url",
        default=os.environ.get("VENTANILLA_BENCH_PG_URL", DEFAULT_PG_ADMIN),
        help="PostgreSQL URL used to create and drop the fuzz database",
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("VENTANILLA_BENCH_REDIS_URL", DEFAULT_REDIS)
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (server log)")
    args = p.parse_args(argv)
    if args.bodies < 1 or args.threads < 1 or not 0 < args.seconds <= 3600:
        p.error("--bodies and --threads must be >= 1, --seconds in (0, 3600]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ventanilla-fuzz-"))
    ok = True
    try:
        for name in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
            ok = run_one(name, args, workdir) and ok
    finally:
        if args.keep:
            print(f"fuzz: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\nresult:", "no 5xx, no contact lost" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
