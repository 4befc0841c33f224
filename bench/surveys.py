"""Benchmark: due surveys -> outbox -> rq -> Twilio (the fake provider on 127.0.0.1).

    .venv/bin/python -m bench.surveys [--messages 10000] [--only sqlite|pg] [--rate 10]

For each database (a fresh SQLite file, a fresh PostgreSQL database) it writes `--messages`
closed cases with a due survey, asks them with `send_due_surveys` (one outbox row of kind
"survey" each, as the worker's housekeeping does) and holds the rows back. It starts
`--workers` real `ventanilla worker` processes (dispatcher thread + rq SimpleWorker each) with
the Twilio SDK pointed at the fake provider, waits until they are idle, releases the rows and
times them until every one is committed as sent. Then the same with `[delivery]
max_per_second = --rate` (`VENTANILLA__DELIVERY__MAX_PER_SECOND`) on `--rate x
--limited-seconds` surveys, to show the per-sender limit held: it counts the messages the fake
received in every 1 s window. Every run checks each survey reached the provider exactly once.
Not a test: it prints a report and exits 0 unless it could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import redis
from rq import Worker
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session

from bench.intake import (
    DEFAULT_PG_ADMIN,
    cpu_seconds,
    create_pg_database,
    drop_pg_database,
    migrate,
    pg_url,
    postgres_cpu,
    postgres_processes,
    print_table,
    tail,
)
from casestore.config import Config, load_config
from casestore.db import make_engine
from casestore.models import Case, Contact, OutboundMessage, Survey
from feedback.surveys import send_due_surveys
from tests.fakeprovider import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, FakeProvider

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FROM_NUMBER = "+5491155550000"
TARGET_RATE = 1000.0
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"
HOLD = timedelta(days=1)


# ---------------------------------------------------------------- data


def bench_config() -> Config:
    # No quiet hours: the benchmark must not depend on the time of day in Buenos Aires.
    return load_config(env={"VENTANILLA__SURVEY__QUIET_HOURS": '""'})


def phone(n: int) -> str:
    return f"+549116{n:07d}"


def seed(url: str, config: Config, count: int, first: int) -> None:
    """`count` closed cases, each with a new citizen and a survey due now."""
    now = datetime.now(UTC)
    triage = config.categories[config.triage_category]
    engine = make_engine(url)
    with engine.begin() as conn:
        contact_ids = list(
            conn.execute(
                insert(Contact).returning(Contact.id, sort_by_parameter_order=True),
                [
                    {
                        "phone": phone(first + i),
                        "language": "es",
                        "preferred_channel": "sms",
                        "created_at": now,
                        "reply_count": 0,
                        "lookup_count": 0,
                    }
                    for i in range(count)
                ],
            ).scalars()
        )
        case_ids = list(
            conn.execute(
                insert(Case).returning(Case.id, sort_by_parameter_order=True),
                [
                    {
                        "tracking_number": f"{7000000000 + first + i}",
                        "contact_id": contact_id,
                        "channel": "sms",
                        "category": triage.code,
                        "department": triage.department,
                        "status": "closed",
                        "language": "es",
                        "created_at": now,
                        "updated_at": now,
                        "closed_at": now,
                    }
                    for i, contact_id in enumerate(contact_ids)
                ],
            ).scalars()
        )
        conn.execute(
            insert(Survey),
            [
                {
                    "case_id": case_id,
                    "contact_id": contact_id,
                    "channel": "sms",
                    "language": "es",
                    "status": "scheduled",
                    "due_at": now - timedelta(minutes=1),
                    "expires_at": now + timedelta(hours=72),
                    "clarified": False,
                    "low_score": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for case_id, contact_id in zip(case_ids, contact_ids, strict=True)
            ],
        )
    engine.dispose()


def ask(url: str, config: Config) -> tuple[int, float]:
    """Every due survey into the outbox, then held back; (asked, seconds)."""
    engine = make_engine(url)
    started = time.monotonic()
    asked = 0
    while True:
        with Session(engine) as session, session.begin():
            counts = send_due_surveys(session, config, "twilio", datetime.now(UTC))
        asked += counts.asked
        if not (counts.asked or counts.skipped or counts.expired):
            break
    seconds = time.monotonic() - started
    with engine.begin() as conn:
        conn.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) + HOLD)
        )
    engine.dispose()
    return asked, seconds


def release(url: str) -> datetime:
    engine = make_engine(url)
    at = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "pending", OutboundMessage.kind == "survey")
            .values(next_attempt_at=at)
        )
    engine.dispose()
    return at


def count_sent(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(OutboundMessage)
                .where(OutboundMessage.kind == "survey", OutboundMessage.status == "sent")
            ).scalar_one()
        )


def check_once(url: str, fake: FakeProvider, phones: set[str]) -> tuple[bool, str]:
    """Every survey row of the run sent, each to its citizen exactly once, with the sid."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = [
            r
            for r in conn.execute(
                select(
                    OutboundMessage.to_address, OutboundMessage.status, OutboundMessage.provider_ref
                ).where(OutboundMessage.kind == "survey")
            )
            if r.to_address in phones
        ]
    engine.dispose()
    received = Counter(m.to for m in fake.messages)
    sids = {m.ref: m.to for m in fake.messages}
    twice = sum(1 for n in received.values() if n > 1)
    missing = sum(1 for r in rows if received[r.to_address] == 0)
    unsent = sum(1 for r in rows if r.status != "sent")
    wrong_ref = sum(1 for r in rows if sids.get(r.provider_ref or "") != r.to_address)
    ok = not (twice or missing or unsent or wrong_ref) and len(fake.messages) == len(rows) == len(
        phones
    )
    text = (
        f"{len(rows)} surveys, {len(fake.messages)} received, duplicates {twice}, "
        f"missing {missing}, not sent {unsent}, wrong sid {wrong_ref}"
    )
    return ok, text


# ---------------------------------------------------------------- workers


@dataclass
class Workers:
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]


def start_workers(count: int, env: dict[str, str], workdir: Path, name: str) -> Workers:
    processes, logs = [], []
    for n in range(count):
        log_path = workdir / f"{name}-worker{n}.log"
        with log_path.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gateway.cli", "worker"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        logs.append(log_path)
    return Workers(processes, logs)


def wait_ready(workers: Workers, connection: redis.Redis, timeout: float = 60) -> None:
    """Every worker registered with rq and past its first dispatch cycle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in zip(workers.processes, workers.logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{tail(log)}")
        if len(Worker.all(connection=connection)) >= len(workers.processes):
            time.sleep(1.0)  # the dispatcher's first sweep and housekeeping
            return
        time.sleep(0.1)
    raise RuntimeError(f"workers not ready within {timeout:.0f} s:\n{tail(workers.logs[0])}")


def stop_workers(workers: Workers) -> None:
    for proc in workers.processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers.processes:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    database: str
    kind: str  # unlimited | limited
    limit: float
    messages: int
    asked_per_s: float = 0.0
    first_ms: float = 0.0  # release -> first message at the provider
    provider_rate: float = 0.0  # messages / (last arrival - release)
    committed_rate: float = 0.0  # messages / (all committed as sent - release)
    paced_rate: float = 0.0  # (messages - 1) / (last arrival - first arrival)
    max_window: int = 0  # most messages the provider got in any 1 s
    tightest: float = 0.0  # shortest span of limit + 1 consecutive arrivals (limited run)
    tightest_gaps: str = ""  # the gaps (ms) inside it
    tightest_at: int = 0  # the index of its first message, in arrival order
    worker_cpu: float = 0.0  # CPU-seconds per wall second, all workers
    fake_cpu: float = 0.0  # the benchmark process: the fake provider's threads
    pg_cpu: float = 0.0
    machine: float = 0.0
    once: bool = False
    check: str = ""


def max_in_window(times: list[datetime], seconds: float = 1.0) -> int:
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while (t - ordered[lo]).total_seconds() >= seconds:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def run_once(
    run: Run,
    url: str,
    env: dict[str, str],
    fake: FakeProvider,
    args: argparse.Namespace,
    workdir: Path,
    first: int,
) -> None:
    config = bench_config()
    seed(url, config, run.messages, first)
    asked, ask_seconds = ask(url, config)
    if asked != run.messages:
        raise RuntimeError(f"asked {asked} of {run.messages} surveys")
    run.asked_per_s = asked / ask_seconds
    connection = redis.Redis.from_url(args.redis_url)
    connection.flushdb()  # the benchmark's own database: checked in main() before the first run
    fake.reset()
    worker_env = dict(env)
    worker_env["VENTANILLA__DELIVERY__MAX_PER_SECOND"] = f"{run.limit:g}"
    workers = start_workers(args.workers, worker_env, workdir, f"{run.database}-{run.kind}")
    engine = make_engine(url)
    try:
        wait_ready(workers, connection)
        procs = [psutil.Process(p.pid) for p in workers.processes]
        me = psutil.Process()
        pg = postgres_processes() if run.database == "pg" else []
        cpu_before = [cpu_seconds(p) for p in procs]
        me_before = cpu_seconds(me)
        pg_before = postgres_cpu(pg)
        machine_before = psutil.cpu_times()
        baseline = count_sent(engine)
        # The fake's clock is this process: a cyclic collection of the benchmark's own garbage
        # (the ORM's, from asking) would stall it mid-run and show as provider-side jitter.
        gc.collect()
        gc.disable()
        started = time.monotonic()
        released = release(url)
        timeout = 60 + run.messages / max(run.limit or TARGET_RATE / 10, 1)
        done = None
        while time.monotonic() - started < timeout:
            if len(fake.messages) >= run.messages and count_sent(engine) >= baseline + run.messages:
                done = time.monotonic()
                break
            for proc, log in zip(workers.processes, workers.logs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited:\n{tail(log)}")
            time.sleep(0.02)
        if done is None:
            raise RuntimeError(
                f"{run.database} {run.kind}: {count_sent(engine) - baseline} of "
                f"{run.messages} sent after {timeout:.0f} s:\n{tail(workers.logs[0])}"
            )
        wall = done - started
        machine_after = psutil.cpu_times()
        run.worker_cpu = sum(cpu_seconds(p) - b for p, b in zip(procs, cpu_before, strict=True))
        run.worker_cpu /= wall
        run.fake_cpu = (cpu_seconds(me) - me_before) / wall
        if pg:
            after = postgres_cpu(postgres_processes())
            run.pg_cpu = sum(v - pg_before.get(pid, 0.0) for pid, v in after.items()) / wall
        busy = sum(
            getattr(machine_after, f) - getattr(machine_before, f)
            for f in ("user", "system", "nice")
        )
        run.machine = 2.0 * busy / max(sum(machine_after) - sum(machine_before), 1e-9)
    finally:
        gc.enable()
        stop_workers(workers)
        engine.dispose()
        connection.close()
    arrivals = [m.date_created for m in fake.messages]
    last = max(arrivals)
    run.first_ms = (min(arrivals) - released).total_seconds() * 1000
    run.provider_rate = run.messages / max((last - released).total_seconds(), 1e-9)
    run.committed_rate = run.messages / wall
    span = (last - min(arrivals)).total_seconds()
    run.paced_rate = (run.messages - 1) / span if span > 0 else 0.0
    run.max_window = max_in_window(arrivals)
    if run.limit:
        ordered = sorted(arrivals)
        n = int(run.limit) + 1
        spans = [
            (ordered[k + n - 1] - ordered[k]).total_seconds() for k in range(len(ordered) - n + 1)
        ]
        if spans:
            k = spans.index(min(spans))
            run.tightest = spans[k]
            run.tightest_at = k
            run.tightest_gaps = " ".join(
                f"{(b - a).total_seconds() * 1000:.0f}"
                for a, b in zip(ordered[k : k + n - 1], ordered[k + 1 : k + n], strict=True)
            )
    phones = {phone(first + i) for i in range(run.messages)}
    run.once, run.check = check_once(url, fake, phones)


# ---------------------------------------------------------------- report


def report(runs: list[Run], args: argparse.Namespace) -> None:
    import aiohttp
    import rq
    import sqlalchemy
    import twilio

    print()
    print("Ventanilla survey delivery benchmark: due survey -> outbox -> rq -> Twilio (fake)")
    print(
        f"{args.workers} `ventanilla worker` processes (dispatcher thread + rq SimpleWorker, "
        "async Twilio SDK sends); fake provider: tests/fakeprovider.py (fast mode) in the "
        "benchmark process"
    )
    print(
        f"Python {sys.version.split()[0]}, twilio {twilio.__version__}, aiohttp "
        f"{aiohttp.__version__}, rq {rq.__version__}, SQLAlchemy {sqlalchemy.__version__}; "
        f"{os.cpu_count()} CPUs"
    )
    print()
    print(
        "msg/s committed: messages / (release -> every row committed as sent); provider: "
        "messages / (release -> last arrival at the fake). CPU columns: CPU-s per wall s."
    )
    header = [
        "database",
        "run",
        "limit/s",
        "messages",
        "msg/s committed",
        "msg/s provider",
        "paced msg/s",
        "max in 1 s",
        "first ms",
        "workers CPU",
        "fake CPU",
        "pg CPU",
        "machine",
        "asked/s",
        "once",
    ]
    rows = [
        [
            r.database,
            r.kind,
            "none" if not r.limit else f"{r.limit:g}",
            str(r.messages),
            f"{r.committed_rate:,.0f}" if r.kind == "unlimited" else f"{r.committed_rate:.1f}",
            f"{r.provider_rate:,.0f}" if r.kind == "unlimited" else f"{r.provider_rate:.1f}",
            f"{r.paced_rate:,.1f}",
            str(r.max_window),
            f"{r.first_ms:.0f}",
            f"{r.worker_cpu:.2f}",
            f"{r.fake_cpu:.2f}",
            f"{r.pg_cpu:.2f}" if r.database == "pg" else "-",
            f"{r.machine:.2f}",
            f"{r.asked_per_s:,.0f}",
            "yes" if r.once else "NO",
        ]
        for r in runs
    ]
    print_table(header, rows)
    print()
    for r in runs:
        if r.kind == "unlimited":
            verdict = "met" if r.committed_rate >= TARGET_RATE else "NOT met"
            print(
                f"{r.database}: {r.committed_rate:,.0f} msg/s with {args.workers} workers, "
                f"no limit: target >= {TARGET_RATE:,.0f} msg/s {verdict}"
            )
        else:
            held = r.max_window <= r.limit
            print(
                f"{r.database}: limit {r.limit:g} msg/s per sender "
                f"{'held' if held else 'NOT held'}: at most {r.max_window} messages in any 1 s "
                f"at the provider, {r.paced_rate:.2f} msg/s between first and last; the "
                f"tightest {int(r.limit) + 1} consecutive messages (from #{r.tightest_at}) span "
                f"{r.tightest:.3f} s (gaps ms: {r.tightest_gaps})"
            )
        print(f"{r.database} {r.kind}: {r.check}")


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def databases(args: argparse.Namespace, workdir: Path) -> Iterator[list[tuple[str, str]]]:
    pg_name = f"ventanilla_bench_surveys_{os.getpid()}"
    created = False
    try:
        urls: list[tuple[str, str]] = []
        for name in ["sqlite", "pg"] if args.only is None else [args.only]:
            if name == "sqlite":
                url = f"sqlite:///{workdir / 'bench.db'}"
            else:
                create_pg_database(args.pg_admin_url, pg_name)
                created = True
                url = pg_url(args.pg_admin_url, pg_name)
            urls.append((name, url))
        yield urls
    finally:
        if created:
            try:
                drop_pg_database(args.pg_admin_url, pg_name)
            except Exception as exc:
                print(f"bench: could not drop database {pg_name}: {exc}", file=sys.stderr)


def check_redis(url: str) -> None:
    """The benchmark flushes its Redis database: refuse one holding anything but rq's and ours."""
    connection = redis.Redis.from_url(url)
    try:
        foreign = [
            key
            for key in connection.scan_iter(count=1000)
            if not key.startswith((b"rq:", b"ventanilla:send-rate:"))
        ]
    finally:
        connection.close()
    if foreign:
        raise RuntimeError(
            f"{url} holds {len(foreign)} other keys (e.g. {foreign[0]!r}); the benchmark "
            "flushes its database: choose an empty one with --redis-url"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.surveys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--messages", type=int, default=10_000, help="surveys in the unlimited run")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--rate", type=float, default=10.0, help="per-sender limit, limited run")
    p.add_argument(
        "--limited-seconds", type=float, default=10.0, help="length of the limited run at --rate"
    )
    p.add_argument("--only", choices=["sqlite", "pg"], help="one database")
    p.add_argument(
        "--pg-admin-url",
        default=os.environ.get("VENTANILLA_BENCH_PG_URL", DEFAULT_PG_ADMIN),
        help="PostgreSQL URL used to create and drop the benchmark database",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("VENTANILLA_BENCH_REDIS_URL", DEFAULT_REDIS),
        help=f"a Redis database the benchmark owns and flushes (default {DEFAULT_REDIS})",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (worker logs)")
    args = p.parse_args(argv)
    if not 1 <= args.messages <= 200_000 or not 1 <= args.workers <= 16:
        p.error("--messages must be 1..200000 and --workers 1..16")
    if args.rate <= 0 or not 0 < args.rate * args.limited_seconds <= 10_000:
        p.error("--rate x --limited-seconds must be 1..10000 messages")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ventanilla-bench-surveys-"))
    runs: list[Run] = []
    try:
        check_redis(args.redis_url)
        with FakeProvider(fast=True) as fake, databases(args, workdir) as urls:
            base_env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("VENTANILLA_", "TWILIO_", "AT_"))
            }
            base_env.update(
                PYTHONUNBUFFERED="1",
                VENTANILLA_REDIS_URL=args.redis_url,
                VENTANILLA_SMS_PROVIDER="twilio",
                VENTANILLA_PUBLIC_URL="http://127.0.0.1:9",  # status callbacks: never called
                TWILIO_ACCOUNT_SID=TWILIO_ACCOUNT_SID,
                TWILIO_AUTH_TOKEN=TWILIO_AUTH_TOKEN,
                TWILIO_FROM_NUMBER=FROM_NUMBER,
                TWILIO_API_BASE_URL=fake.url,
            )
            limited = max(1, round(args.rate * args.limited_seconds))
            for name, url in urls:
                env = dict(base_env, VENTANILLA_DATABASE_URL=url)
                migrate(env)
                plan = [
                    Run(name, "unlimited", 0.0, args.messages),
                    Run(name, "limited", args.rate, limited),
                ]
                first = 0
                for run in plan:
                    print(f"bench: {name} {run.kind}: {run.messages} surveys", flush=True)
                    run_once(run, url, env, fake, args, workdir, first)
                    first += run.messages
                    runs.append(run)
                    print(
                        f"bench: {name} {run.kind}: {run.committed_rate:,.1f} msg/s committed, "
                        f"max {run.max_window} in 1 s, once: {run.once}",
                        flush=True,
                    )
        report(runs, args)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if runs:
            with contextlib.closing(redis.Redis.from_url(args.redis_url)) as connection:
                connection.flushdb()  # the queue, workers' registrations, the rate schedule
        if args.keep:
            print(f"bench: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nbench: done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
