"""Where one inbound SMS spends its CPU: each step of the hot path timed alone, in process.

    .venv/bin/python -m bench.breakdown [--n 2000] [--only sqlite|pg]

Runs the same functions `POST /webhooks/twilio/sms` runs (form parse, signature check, Twilio
parse, SMS classification, the intake transaction, TwiML rendering) on the same request shape
as `bench.intake`, without HTTP, and prints microseconds per request for each. The intake
transaction is timed as the group-commit writer runs it: batches of 64 requests in one
transaction, on a fresh SQLite file and a fresh PostgreSQL database. The HTTP and ASGI cost is
what `bench.intake` measures for the bare endpoint. A diagnosis aid, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.intake import (
    AUTH_TOKEN,
    DEFAULT_PG_ADMIN,
    create_pg_database,
    drop_pg_database,
    pg_url,
    twilio_form,
    twilio_signature,
)

URL = "http://127.0.0.1:8000/webhooks/twilio/sms"
BATCH = 64  # what the group-commit writer takes at most


def per_call_us(fn: Callable[[int], Any], n: int, repeats: int = 5) -> float:
    """Best of `repeats` runs of fn(0..n-1), in CPU microseconds per call (noise-resistant)."""
    best = float("inf")
    for r in range(repeats):
        start = time.process_time()
        for i in range(n):
            fn(r * n + i)
        best = min(best, time.process_time() - start)
    return 1e6 * best / n


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    p.add_argument("--n", type=int, default=2000, help="requests per timed loop")
    p.add_argument("--only", choices=["sqlite", "pg"])
    p.add_argument(
        "--pg-admin-url", default=os.environ.get("VENTANILLA_BENCH_PG_URL", DEFAULT_PG_ADMIN)
    )
    args = p.parse_args(argv)

    from casestore.config import load_config
    from casestore.db import make_engine
    from casestore.intake import IntakeRequest, process_sms
    from casestore.migrations import upgrade
    from feedback.surveys import SURVEYS
    from gateway.forms import parse_form
    from gateway.providers import twilio
    from sms.conversation import classify_sms

    config = load_config(env={})
    n = args.n
    total = n * 6
    forms = [twilio_form(i, 1) for i in range(total)]
    bodies = [urlencode(f).encode() for f in forms]
    sigs = [twilio_signature(AUTH_TOKEN, URL, f) for f in forms]
    ctype = "application/x-www-form-urlencoded"
    parsed = [parse_form(b, ctype) for b in bodies]
    now = datetime.now(UTC)
    inbounds = [twilio.parse_sms(f, now, config.country) for f in parsed]
    plans = [classify_sms(i.text, config) for i in inbounds]

    rows: list[tuple[str, float]] = [
        (
            "parse_form (parse_qsl, keep blanks)",
            per_call_us(lambda i: parse_form(bodies[i], ctype), n),
        ),
        (
            "twilio.verify_signature (RequestValidator)",
            per_call_us(lambda i: twilio.verify_signature(AUTH_TOKEN, URL, parsed[i], sigs[i]), n),
        ),
        (
            "twilio.parse_sms (phonenumbers)",
            per_call_us(lambda i: twilio.parse_sms(parsed[i], now, config.country), n),
        ),
        (
            "classify_sms (keywords, categories)",
            per_call_us(lambda i: classify_sms(inbounds[i].text, config), n),
        ),
        (
            "twilio.render_sms_reply (MessagingResponse)",
            per_call_us(
                lambda i: twilio.render_sms_reply("Recibimos su pedido. Numero: 1234 5678 90"), n
            ),
        ),
    ]

    workdir = Path(tempfile.mkdtemp(prefix="ventanilla-breakdown-"))
    pg_name = f"ventanilla_breakdown_{os.getpid()}"
    databases: list[tuple[str, str]] = []
    if args.only in (None, "sqlite"):
        databases.append(("sqlite", f"sqlite:///{workdir / 'b.db'}"))
    if args.only in (None, "pg"):
        create_pg_database(args.pg_admin_url, pg_name)
        databases.append(("pg", pg_url(args.pg_admin_url, pg_name)))
    try:
        for name, url in databases:
            upgrade(url)
            engine = make_engine(url)
            requests = [IntakeRequest(inbounds[i], plans[i], True) for i in range(total)]
            batches = iter(requests[k : k + BATCH] for k in range(0, total, BATCH))

            def run_batches(engine: Any, batches: Any, count: int) -> tuple[float, float]:
                """(CPU us, wall us) per request for `count` requests in batches."""
                cpu0, wall0 = time.process_time(), time.perf_counter()
                done = 0
                while done < count:
                    chunk = next(batches)
                    with engine.connect() as conn, conn.begin():
                        for req in chunk:
                            process_sms(conn, req, config, surveys=SURVEYS)
                    done += len(chunk)
                return (
                    1e6 * (time.process_time() - cpu0) / done,
                    1e6 * (time.perf_counter() - wall0) / done,
                )

            run_batches(engine, batches, BATCH * 4)  # warm the statement cache and the pool
            timings = [run_batches(engine, batches, n // 2) for _ in range(3)]
            cpu = min(t[0] for t in timings)
            wall = statistics.median(t[1] for t in timings)
            rows.append((f"process_sms, batches of {BATCH}, {name}: CPU", cpu))
            rows.append((f"process_sms, batches of {BATCH}, {name}: wall", wall))
            engine.dispose()
    finally:
        if any(name == "pg" for name, _ in databases):
            drop_pg_database(args.pg_admin_url, pg_name)
        shutil.rmtree(workdir, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"{'step':{width}}  us/request")
    for label, us in rows:
        print(f"{label:{width}}  {us:10.0f}")
    print(
        "\nCPU-time minimum of repeated loops (wall where marked: it includes waiting on the "
        "database); HTTP + ASGI overhead is the bare endpoint's share in bench.intake."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
