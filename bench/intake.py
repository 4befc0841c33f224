"""Benchmark: inbound Twilio SMS webhook -> case committed -> TwiML reply.

    make bench
    .venv/bin/python -m bench.intake [--seconds 10] [--rounds 3] [--only sqlite|pg]

Starts, on 127.0.0.1 only, three one-worker uvicorn servers with identical settings
(`bench.serve_app`): the bare endpoint (`bench.bare`, form parse only: the limit), the real
gateway on a fresh SQLite file and the real gateway on a fresh PostgreSQL database. wrk drives
each in turn with 64 keep-alive connections, alternating targets round by round (bare, sqlite,
pg, bare, sqlite, pg, ...) so that the noise of a shared 2-core machine falls on all of them
alike, and the report gives medians. Every request is a real-shape Twilio form (blank ToCity=,
ToZip=... included) with its own MessageSid and sender, signed with X-Twilio-Signature, so every
one is verified and stores a new case. After the rounds it counts the cases in each database
against the 200 responses. Not a test: it prints a report and exits 0 unless it could not run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import math
import os
import resource
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LUA = HERE / "twilio_sms.lua"
PATH = "/webhooks/twilio/sms"
HOST = "127.0.0.1"
AUTH_TOKEN = "bench-token"
ACCOUNT_SID = "AC" + "b" * 32
SERVICE_SID = "MG" + "c" * 32
TO_NUMBER = "+5491150000000"
TARGET_RATIO = 0.40
TARGET_P99_MS = 50.0
# Citizens' messages: no keyword commands, so each one (from a new number) opens a new case.
BODIES = (
    "Hola, no me llego el pago de la tarjeta alimentar este mes. Mi DNI es 30123456",
    "Buenas tardes, quiero anotarme en el comedor del barrio San Martin, somos 5",
    "Necesito saber como tramitar la pension, mi mama tiene 72 anos",
    "Se me lleno la casa de agua con la tormenta, necesito colchones y frazadas",
    "Hola buen dia, consulto por el turno que pedi la semana pasada",
    "Quisiera hablar con alguien de la oficina, gracias",
)
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"


# ---------------------------------------------------------------- requests


def twilio_signature(token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """X-Twilio-Signature: HMAC-SHA1 over the URL + every name+value in name order, base64."""
    data = url + "".join(k + v for k, v in sorted(params))
    digest = hmac.new(token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def twilio_form(n: int, run_tag: int) -> list[tuple[str, str]]:
    """The n-th inbound SMS, shaped and ordered like a real Twilio webhook."""
    sid = f"SM{run_tag:08x}{n:024x}"
    sender = f"+54911{40000000 + n:08d}"  # unique Argentine mobile per request: a new contact
    return [
        ("ToCountry", "AR"),
        ("ToState", ""),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", BODIES[n % len(BODIES)]),
        ("FromCountry", "AR"),
        ("To", TO_NUMBER),
        ("MessagingServiceSid", SERVICE_SID),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
    ]


def check_signer() -> None:
    """Our signer must agree with Twilio's own validator, or every request would be a 403."""
    from twilio.request_validator import RequestValidator

    vector = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, vector) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    form = twilio_form(0, 0)
    url = f"http://{HOST}:8000{PATH}"
    sig = twilio_signature(AUTH_TOKEN, url, form)
    assert RequestValidator(AUTH_TOKEN).validate(url, dict(form), sig)


@dataclass
class RequestSource:
    """Hands out blocks of never-used, signed requests for one target."""

    url: str
    run_tag: int
    workdir: Path
    unique: bool
    next_n: int = 0

    def write(self, count: int, name: str) -> Path:
        path = self.workdir / f"{name}.requests"
        start = self.next_n if self.unique else 0
        with path.open("w", encoding="utf-8") as out:
            for n in range(start, start + count):
                form = twilio_form(n, self.run_tag)
                out.write(f"{twilio_signature(AUTH_TOKEN, self.url, form)}\t{urlencode(form)}\n")
        if self.unique:
            self.next_n += count
        return path

    def one(self) -> tuple[bytes, str]:
        form = twilio_form(self.next_n, self.run_tag)
        self.next_n += 1
        return urlencode(form).encode(), twilio_signature(AUTH_TOKEN, self.url, form)


# ---------------------------------------------------------------- servers and databases


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Target:
    name: str  # bare | sqlite | pg, or sqlite@base | pg@base (the --baseline checkout)
    port: int
    env: dict[str, str]
    root: Path = ROOT  # the checkout whose gateway this target serves
    database_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    source: RequestSource | None = None
    last_rate: float = 0.0
    sent: int = 0
    acknowledged: int = 0
    refused: int = 0
    wrapped: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"


def start_server(target: Target, workdir: Path) -> None:
    kind = "bare" if target.name == "bare" else "real"
    target.log = workdir / f"{target.name}.log"
    with target.log.open("wb") as log:
        target.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.serve_app",
                kind,
                "--host",
                HOST,
                "--port",
                str(target.port),
            ],
            cwd=target.root,
            env={**target.env, "PYTHONPATH": str(target.root)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            raise RuntimeError(f"{target.name} server exited:\n{tail(target.log)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, target.port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{target.name} server did not listen within 60 s:\n{tail(target.log)}")


def stop_server(target: Target) -> None:
    proc = target.process
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def migrate(env: dict[str, str], root: Path = ROOT) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "migrate"],
        cwd=root,
        env={**env, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def pg_url(admin_url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def create_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count_rows(database_url: str) -> tuple[int, int]:
    """(cases, inbound Twilio interactions) in the database."""
    queries = (
        "SELECT count(*) FROM cases",
        "SELECT count(*) FROM interactions WHERE direction = 'in' AND provider = 'twilio'",
    )
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(path)) as conn:
            a, b = (conn.execute(q).fetchone()[0] for q in queries)
            return int(a), int(b)
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        a, b = (conn.execute(q).fetchone()[0] for q in queries)  # type: ignore[index]
        return int(a), int(b)


def smoke(target: Target) -> None:
    """One signed request by hand: the real server must answer 200 with a reply."""
    assert target.source is not None
    body, sig = target.source.one()
    req = urllib.request.Request(
        target.url,
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sig,
        },
        method="POST",
    )
    target.sent += 1
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            text = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raise RuntimeError(
            f"{target.name}: smoke request got {exc.code}: {exc.read()[:200]!r}\n{tail(target.log)}"
        ) from exc
    if status != 200 or "<Message>" not in text:
        raise RuntimeError(f"{target.name}: smoke request got {status}: {text[:200]}")
    target.acknowledged += 1


# ---------------------------------------------------------------- load


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: installing Debian's package (apt-get install -y wrk) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, timeout=300)
        wrk = shutil.which("wrk")
        if not wrk:
            subprocess.run(["apt-get", "update", "-q"], check=False, timeout=300)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, timeout=300)
            wrk = shutil.which("wrk")
        if wrk:
            return wrk
    raise SystemExit(
        "bench: wrk is not installed and could not be installed here (needs root and apt-get).\n"
        "Install it with: sudo apt-get install -y wrk"
    )


def wrk_command(
    wrk: str, target: Target, seconds: float, requests_file: Path | str, args: argparse.Namespace
) -> list[str]:
    return [
        wrk,
        "-t",
        str(args.wrk_threads),
        "-c",
        str(args.connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "15s",
        "-s",
        str(LUA),
        target.url,
        "--",
        str(requests_file),
        str(args.wrk_threads),
    ]


@dataclass
class Usage:
    """CPU seconds spent by the pieces of one measured run, and by the whole machine."""

    server: float
    postgres: float
    machine_busy: float
    machine_total: float


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def postgres_processes() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["name"]):
        if (p.info.get("name") or "").startswith("postgres"):
            out.append(p)
    return out


def postgres_cpu(procs: list[psutil.Process]) -> dict[int, float]:
    seen: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            seen[p.pid] = cpu_seconds(p)
    return seen


def run_wrk(
    wrk: str,
    target: Target,
    seconds: float,
    args: argparse.Namespace,
    name: str,
) -> tuple[dict[str, Any], Usage, float]:
    assert target.source is not None and target.process is not None
    # Enough never-used requests for the run: twice the rate seen so far, at least args.cap/s.
    rate = max(args.cap, 2.0 * target.last_rate)
    count = int(math.ceil(rate * seconds)) + args.connections * 2
    requests_file = target.source.write(count, name)
    cmd = wrk_command(wrk, target, seconds, requests_file, args)

    server = psutil.Process(target.process.pid)
    pg_before = postgres_cpu(postgres_processes()) if target.name == "pg" else {}
    server_before = cpu_seconds(server)
    machine_before = psutil.cpu_times()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_after = psutil.cpu_times()
    server_after = cpu_seconds(server)
    pg_cpu = 0.0
    if target.name == "pg":
        after = postgres_cpu(postgres_processes())
        pg_cpu = sum(v - pg_before.get(pid, 0.0) for pid, v in after.items())
    requests_file.unlink()

    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(line[len("BENCH ") :])
    busy_before = machine_before.user + machine_before.system + machine_before.nice
    busy_after = machine_after.user + machine_after.system + machine_after.nice
    total = sum(machine_after) - sum(machine_before)
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    usage = Usage(
        server=server_after - server_before,
        postgres=pg_cpu,
        machine_busy=busy_after - busy_before,
        machine_total=total,
    )

    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    # wrk calls request() once before the run to check the request parses (thread 1, never
    # sent): that line's MessageSid is skipped, not stored.
    result["sent"] -= 1
    ok = result["requests"] - result["status_errors"]
    target.sent += result["sent"]
    target.acknowledged += ok
    target.refused += result["status_errors"]
    target.wrapped += result["wrapped"]
    target.last_rate = max(target.last_rate, result["rps"])
    return result, usage, wrk_cpu


# ---------------------------------------------------------------- report


def ms(us: float) -> float:
    return us / 1000.0


def fmt_row(cols: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True))
    )


def print_table(header: Sequence[str], rows: list[list[str]]) -> None:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    print(fmt_row(header, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for r in rows:
        print(fmt_row(r, widths))


def versions(opts: dict[str, Any], wrk: str) -> str:
    import sqlalchemy
    import starlette
    import uvicorn

    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return (
        f"Python {sys.version.split()[0]}, uvicorn {uvicorn.__version__} (http={opts['http']}, "
        f"loop={opts['loop']}, access_log off, log_level {opts['log_level']}, 1 worker), "
        f"starlette {starlette.__version__}, SQLAlchemy {sqlalchemy.__version__}; "
        f"{wrk_version.split(' Copyright')[0]}; {os.cpu_count()} CPUs"
    )


def report(targets: list[Target], args: argparse.Namespace, wrk: str) -> None:
    from bench.serve_app import uvicorn_options

    bare = targets[0]
    print()
    print(
        f"Ventanilla intake benchmark: POST {PATH} (signed Twilio SMS -> case committed -> TwiML)"
    )
    print(
        f"{args.connections} connections, wrk {args.wrk_threads} thread(s), {args.rounds} rounds x "
        f"{args.seconds:g} s each target (after {args.warmup:g} s warm-up), targets alternating"
    )
    print(versions(uvicorn_options(), wrk))
    print()
    print(
        "Per round (CPU columns: CPU-seconds used during the run / wall seconds; 2.0 = both cores)"
    )
    header = [
        "round",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "non-2xx",
        "sock err",
        "x bare",
        "server CPU",
        "wrk CPU",
        "pg CPU",
        "machine",
        "server us/req",
    ]
    rows = []
    for r in range(args.rounds):
        for t in targets:
            if r >= len(t.rounds):
                continue
            res = t.rounds[r]
            wall = res["duration_us"] / 1e6
            sock = (
                res["connect_errors"] + res["read_errors"] + res["write_errors"] + res["timeouts"]
            )
            ratio = res["rps"] / bare.rounds[r]["rps"] if t is not bare else 1.0
            usage: Usage = res["usage"]
            rows.append(
                [
                    str(r + 1),
                    t.name,
                    f"{res['rps']:.0f}",
                    f"{ms(res['p50_us']):.1f}",
                    f"{ms(res['p99_us']):.1f}",
                    f"{ms(res['max_us']):.1f}",
                    str(res["status_errors"]),
                    str(sock),
                    f"{ratio:.2f}",
                    f"{usage.server / wall:.2f}",
                    f"{res['wrk_cpu'] / wall:.2f}",
                    f"{usage.postgres / wall:.2f}" if t.name.startswith("pg") else "-",
                    f"{2 * usage.machine_busy / max(usage.machine_total, 1e-9):.2f}",
                    f"{1e6 * usage.server / max(res['requests'], 1):.0f}",
                ]
            )
    print_table(header, rows)

    print()
    print(f"Medians over {args.rounds} rounds (x bare: median of the per-round ratios)")
    header = [
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "x bare",
        f">= {TARGET_RATIO:.2f}x",
        "p99 <= 50 ms",
    ]
    rows = []
    for t in targets:
        rps = statistics.median(x["rps"] for x in t.rounds)
        p50 = statistics.median(ms(x["p50_us"]) for x in t.rounds)
        p99 = statistics.median(ms(x["p99_us"]) for x in t.rounds)
        if t is bare:
            rows.append([t.name, f"{rps:.0f}", f"{p50:.1f}", f"{p99:.1f}", "1.00", "(limit)", "-"])
            continue
        ratio = statistics.median(
            x["rps"] / b["rps"] for x, b in zip(t.rounds, bare.rounds, strict=False)
        )
        rows.append(
            [
                t.name,
                f"{rps:.0f}",
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{ratio:.2f}",
                "met" if ratio >= TARGET_RATIO else "NOT MET",
                "met" if p99 <= TARGET_P99_MS else "NOT MET",
            ]
        )
    print_table(header, rows)
    print(
        f"  With {args.connections} connections in a closed loop, mean latency = connections / "
        f"throughput (Little's law): p99 <= {TARGET_P99_MS:g} ms needs more than "
        f"{args.connections / (TARGET_P99_MS / 1000):.0f} req/s."
    )

    print()
    print("Stored vs acknowledged (whole run: smoke request, warm-ups and measured rounds)")
    for t in targets[1:]:
        assert t.database_url is not None
        cases, inbound = count_rows(t.database_url)
        in_flight = t.sent - t.acknowledged - t.refused
        if cases < t.acknowledged or cases > t.sent or cases != inbound:
            verdict = "MISMATCH"
        elif cases == t.sent:
            verdict = "OK: every request sent is stored"
        else:
            verdict = f"OK: 200 responses <= cases; {t.sent - cases} unanswered requests not stored"
        print(
            f"  {t.name:6}  requests sent {t.sent} = 200 responses {t.acknowledged} + non-2xx "
            f"{t.refused} + in flight when wrk stopped {in_flight}; cases {cases}, inbound "
            f"interactions {inbound}: {verdict}"
        )
        if t.wrapped:
            print(
                f"  {t.name:6}  WARNING: wrk ran out of prepared requests {t.wrapped} times and "
                "repeated some (duplicates, not new cases): raise --cap"
            )

    print()
    print("Commands")
    print(f"  {shlex.join([sys.executable, '-m', 'bench.intake', *sys.argv[1:]])}  (cwd {ROOT})")
    for t in targets:
        kind = "bare" if t.name == "bare" else "real"
        server = ["python", "-m", "bench.serve_app", kind, "--port", str(t.port)]
        load = wrk_command("wrk", t, args.seconds, "REQUESTS_FILE", args)
        where = "" if t.root == ROOT else f"  (cwd {t.root})"
        print(f"  {t.name}: server  {shlex.join(server)}{where}")
        print(f"  {t.name}: load    {shlex.join(load)}")


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def resources(args: argparse.Namespace) -> Iterator[tuple[list[Target], Path]]:
    run_tag = os.getpid()
    workdir = Path(tempfile.mkdtemp(prefix="ventanilla-bench-"))
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VENTANILLA_", "TWILIO_", "AT_"))
    }
    base_env.update(
        PYTHONUNBUFFERED="1",
        VENTANILLA_REDIS_URL=args.redis_url,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        VENTANILLA_SMS_PROVIDER="twilio",
        VENTANILLA_SIMULATOR="0",
    )
    pg_name = f"ventanilla_bench_{run_tag}"
    pg_created: list[str] = []
    targets: list[Target] = []
    try:
        bare = Target("bare", free_port(), dict(base_env))
        bare.source = RequestSource(bare.url, run_tag, workdir, unique=False)
        targets.append(bare)
        wanted = ["sqlite", "pg"] if args.only is None else [args.only]
        roots = [("", ROOT)] + ([("@base", args.baseline)] if args.baseline else [])
        for name in wanted:
            for suffix, root in roots:
                port = free_port()
                if name == "sqlite":
                    url = f"sqlite:///{workdir / f'bench{suffix}.db'}"
                else:
                    database = pg_name + suffix.replace("@", "_")
                    create_pg_database(args.pg_admin_url, database)
                    pg_created.append(database)
                    url = pg_url(args.pg_admin_url, database)
                env = dict(base_env)
                env.update(
                    VENTANILLA_DATABASE_URL=url,
                    VENTANILLA_PUBLIC_URL=f"http://{HOST}:{port}",
                )
                t = Target(name + suffix, port, env, root=root, database_url=url)
                t.source = RequestSource(t.url, run_tag, workdir, unique=True)
                migrate(env, root)
                targets.append(t)
        for t in targets:
            start_server(t, workdir)
        yield targets, workdir
    finally:
        for t in targets:
            stop_server(t)
        for database in pg_created:
            try:
                drop_pg_database(args.pg_admin_url, database)
            except Exception as exc:
                print(f"bench: could not drop database {database}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"bench: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.intake",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per target and round"
    )
    p.add_argument(
        "--warmup", type=float, default=2.0, help="unreported seconds before each measurement"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", choices=["sqlite", "pg"], help="one database beside the bare endpoint")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: 2 cores)")
    p.add_argument(
        "--cap",
        type=float,
        default=3000.0,
        help="prepare at least this many signed requests per second of run (default 3000)",
    )
    p.add_argument(
        "--pg-admin-url",
        default=os.environ.get("VENTANILLA_BENCH_PG_URL", DEFAULT_PG_ADMIN),
        help="PostgreSQL URL used to create and drop the benchmark database",
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("VENTANILLA_BENCH_REDIS_URL", DEFAULT_REDIS)
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    p.add_argument(
        "--baseline",
        type=Path,
        help="also serve the gateway of this checkout (an earlier revision: `git worktree add "
        "DIR REV`) beside each database, in the same alternating rounds, for a side-by-side "
        "comparison; it runs on this checkout's virtualenv",
    )
    args = p.parse_args(argv)
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / "gateway" / "app.py").is_file():
            p.error(f"--baseline {args.baseline}: not a Ventanilla checkout")
    if args.seconds <= 0 or args.warmup < 0 or args.rounds < 1:
        p.error("--seconds must be > 0, --warmup >= 0, --rounds >= 1")
    if args.seconds * args.rounds > 600:
        p.error("--seconds x --rounds over 600: keep the benchmark bounded")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    check_signer()
    wrk = find_wrk()
    targets_count = 1 + (2 if args.only is None else 1) * (2 if args.baseline else 1)
    estimate = targets_count * args.rounds * (args.seconds + args.warmup)
    print(
        f"bench: {targets_count} targets x {args.rounds} rounds x "
        f"({args.warmup:g} s warm-up + {args.seconds:g} s): about {estimate:.0f} s of load",
        flush=True,
    )
    started = time.monotonic()
    try:
        with resources(args) as (targets, _workdir):
            for t in targets[1:]:
                smoke(t)
            for r in range(args.rounds):
                for t in targets:
                    if args.warmup > 0:
                        run_wrk(wrk, t, args.warmup, args, f"{t.name}-warmup-{r}")
                    result, usage, wrk_cpu = run_wrk(wrk, t, args.seconds, args, f"{t.name}-{r}")
                    result["usage"] = usage
                    result["wrk_cpu"] = wrk_cpu
                    t.rounds.append(result)
                    print(
                        f"bench: round {r + 1} {t.name:6} {result['rps']:8.0f} req/s  "
                        f"p99 {ms(result['p99_us']):7.1f} ms  non-2xx {result['status_errors']}",
                        flush=True,
                    )
            # Let requests still in flight when wrk stopped reach their commit before counting.
            time.sleep(1.0)
            report(targets, args, wrk)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(f"\nbench: done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
