"""Benchmark: one USSD step over HTTP (session read/write in Redis + menu step + render).

    .venv/bin/python -m bench.ussd [--seconds 10] [--rounds 3] [--warmup 2]

Starts, on 127.0.0.1 only, two one-worker uvicorn servers with identical settings
(`bench.serve_app`): the bare endpoint (`bench.bare`: parse the same AT USSD form, answer a
constant screen: the limit) and the real gateway on a fresh SQLite file. wrk drives each in turn
with 64 keep-alive connections, alternating round by round, and the report gives medians.

Every request is a real-shape Africa's Talking USSD form with its own sessionId and phone, and
`text=1`: "new request" pressed at the main menu, answered with the first page of categories.
Before each run the sessions are left at the main menu in Redis exactly as a dial leaves them
(the app's own SessionStore and `gateway.routes.ussd.remember`), so each request is a
mid-session step that reads the session, steps the menu, renders CON text and writes the session
back; it does not touch the database. Afterwards it checks in Redis that every answered step was
stepped once.
Not a test: it prints a report and exits 0 unless it could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil
import redis

from bench.intake import (
    HOST,
    ROOT,
    Target,
    cpu_seconds,
    find_wrk,
    free_port,
    migrate,
    ms,
    print_table,
    start_server,
    stop_server,
    tail,
    versions,
)

HERE = Path(__file__).resolve().parent
LUA = HERE / "ussd.lua"
PATH = "/webhooks/africastalking/ussd"
TOKEN = "bench-ussd-token"
SERVICE_CODE = "*384*123#"
TARGET_RATIO = 0.50
TARGET_P99_MS = 25.0
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
EXPECTED = "CON Elija el tema de su pedido."


@dataclass
class UssdTarget(Target):
    run_tag: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}?token={TOKEN}"


def session_id(n: int, run_tag: int) -> str:
    return f"ATUid_{run_tag:08x}{n:024x}"


def ussd_form(n: int, run_tag: int) -> str:
    """The n-th request: "1" at the main menu of its own session, as AT posts it."""
    return urlencode(
        [
            ("sessionId", session_id(n, run_tag)),
            ("serviceCode", SERVICE_CODE),
            ("phoneNumber", f"+54911{40000000 + n:08d}"),
            ("networkCode", "72207"),
            ("text", "1"),
        ]
    )


class Sessions:
    """Hands out never-used sessions, left at the main menu in Redis the way a dial leaves them."""

    def __init__(self, redis_url: str, run_tag: int, workdir: Path, seed: bool) -> None:
        from casestore.config import load_config
        from ivr.machine import start
        from ivr.menu import load_menu

        config = load_config(env={})
        self.menu = load_menu(config)
        self.ttl = int(config.raw.get("ivr", {}).get("session_ttl_seconds", 300))
        self.main = start(self.menu, "ussd").state
        self.redis_url = redis_url
        self.run_tag = run_tag
        self.workdir = workdir
        self.seed = seed
        self.next_n = 0

    def write(self, count: int, name: str) -> Path:
        from gateway.menu_store import SessionStore
        from gateway.routes.ussd import PROVIDER, remember

        path = self.workdir / f"{name}.requests"
        start = self.next_n if self.seed else 0
        client = redis.Redis.from_url(self.redis_url)
        try:
            pipe = client.pipeline(transaction=False)
            store = SessionStore(pipe, self.ttl, 60)
            with path.open("w", encoding="utf-8") as out:
                for n in range(start, start + count):
                    out.write(ussd_form(n, self.run_tag) + "\n")
                    if self.seed:
                        key = f"{PROVIDER}:{session_id(n, self.run_tag)}"
                        store.save(key, self.main)
                        remember(store, key, "")
                        if n % 2000 == 0:
                            pipe.execute()
            pipe.execute()
        finally:
            client.close()
        if self.seed:
            self.next_n += count
        return path


def stepped(redis_url: str, run_tag: int) -> tuple[int, int]:
    """(answers cached for step 1 of this run's sessions, sessions now at the category page)."""
    client = redis.Redis.from_url(redis_url)
    try:
        answers = sum(
            1
            for _ in client.scan_iter(
                f"ventanilla:menu:a:ussd:africastalking:ATUid_{run_tag:08x}*:1:*", count=5000
            )
        )
        keys = list(
            client.scan_iter(f"ventanilla:menu:s:africastalking:ATUid_{run_tag:08x}*", count=5000)
        )
        at_categories = 0
        for i in range(0, len(keys), 1000):
            for raw in client.mget(keys[i : i + 1000]):
                if raw and json.loads(raw).get("node") == "new_request":
                    at_categories += 1
        return answers, at_categories
    finally:
        client.close()


def forget(redis_url: str, run_tag: int) -> int:
    """Delete this run's sessions and cached answers (they would expire after the TTL anyway)."""
    client = redis.Redis.from_url(redis_url)
    deleted = 0
    try:
        keys = list(client.scan_iter(f"ventanilla:menu:*ATUid_{run_tag:08x}*", count=5000))
        for i in range(0, len(keys), 5000):
            deleted += int(client.unlink(*keys[i : i + 5000]))
        return deleted
    finally:
        client.close()


def database_rows(url: str) -> int:
    path = url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM interactions").fetchone()[0]) + int(
            conn.execute("SELECT count(*) FROM cases").fetchone()[0]
        )


def smoke(target: UssdTarget, sessions: Sessions) -> None:
    """One request by hand: the real server must answer 200 with the category page."""
    path = sessions.write(1, "smoke")
    body = path.read_text().strip().encode()
    path.unlink()
    req = urllib.request.Request(
        target.url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    target.sent += 1
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"smoke request got {exc.code}: {exc.read()[:200]!r}") from exc
    if not text.startswith(EXPECTED):
        raise RuntimeError(f"smoke request got {text[:200]!r}\n{tail(target.log)}")
    target.acknowledged += 1


def wrk_command(
    wrk: str, target: Target, seconds: float, requests_file: Path | str, args: argparse.Namespace
) -> list[str]:
    return [
        wrk,
        *("-t", str(args.wrk_threads), "-c", str(args.connections), "-d", f"{seconds:g}s"),
        *("--timeout", "15s", "-s", str(LUA), target.url, "--"),
        *(str(requests_file), str(args.wrk_threads)),
    ]


def redis_processes() -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["name"]) if (p.info.get("name") or "") == "redis-server"
    ]


def busy(times: Any) -> float:
    """CPU seconds the machine spent busy, from psutil.cpu_times()."""
    return float(times.user + times.system + times.nice)


def run_wrk(
    wrk: str, target: UssdTarget, sessions: Sessions, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    assert target.process is not None
    rate = max(args.cap, 2.0 * target.last_rate)
    requests_file = sessions.write(int(math.ceil(rate * seconds)) + 2 * args.connections, "run")
    cmd = wrk_command(wrk, target, seconds, requests_file, args)
    server = psutil.Process(target.process.pid)
    redis_procs = redis_processes()
    redis_before = sum(cpu_seconds(p) for p in redis_procs)
    server_before = cpu_seconds(server)
    machine_before = psutil.cpu_times()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_after = psutil.cpu_times()
    server_after = cpu_seconds(server)
    redis_after = sum(cpu_seconds(p) for p in redis_procs)
    requests_file.unlink()
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(line[len("BENCH ") :])
    wall = result["duration_us"] / 1e6
    result.update(
        rps=result["requests"] / wall,
        server_cpu=(server_after - server_before) / wall,
        redis_cpu=(redis_after - redis_before) / wall,
        wrk_cpu=(
            children_after.ru_utime
            + children_after.ru_stime
            - children_before.ru_utime
            - children_before.ru_stime
        )
        / wall,
        machine=2
        * (busy(machine_after) - busy(machine_before))
        / max(sum(machine_after) - sum(machine_before), 1e-9),
        server_us=1e6 * (server_after - server_before) / max(result["requests"], 1),
    )
    result["sent"] -= 1  # wrk builds one request to check the script; it is never sent
    target.sent += result["sent"]
    target.acknowledged += result["requests"] - result["status_errors"]
    target.refused += result["status_errors"]
    target.wrapped += result["wrapped"]
    target.last_rate = max(target.last_rate, result["rps"])
    return result


# ---------------------------------------------------------------- report


def report(bare: UssdTarget, real: UssdTarget, args: argparse.Namespace, wrk: str) -> None:
    from bench.serve_app import uvicorn_options

    print()
    print(f"Ventanilla USSD benchmark: POST {PATH} (text=1 at the main menu -> category page)")
    print(
        f"{args.connections} connections, wrk {args.wrk_threads} thread(s), {args.rounds} rounds x "
        f"{args.seconds:g} s each target (after {args.warmup:g} s warm-up), targets alternating"
    )
    print(versions(uvicorn_options(), wrk))
    print()
    print(
        "Per round (CPU columns: CPU-seconds used during the run / wall seconds; 2.0 = both cores)"
    )
    header = ["round", "target", "req/s", "p50 ms", "p99 ms", "max ms", "non-2xx", "sock err"]
    header += ["x bare", "server CPU", "redis CPU", "wrk CPU", "machine", "server us/req"]
    rows = []
    for r in range(args.rounds):
        for t in (bare, real):
            res = t.rounds[r]
            sock = sum(
                res[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
            )
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
                    f"{res['rps'] / bare.rounds[r]['rps']:.2f}",
                    f"{res['server_cpu']:.2f}",
                    f"{res['redis_cpu']:.2f}",
                    f"{res['wrk_cpu']:.2f}",
                    f"{res['machine']:.2f}",
                    f"{res['server_us']:.0f}",
                ]
            )
    print_table(header, rows)
    print()
    print(f"Medians over {args.rounds} rounds (x bare: median of the per-round ratios)")
    header = ["target", "req/s", "p50 ms", "p99 ms", "x bare", f">= {TARGET_RATIO:.2f}x"]
    header.append(f"p99 <= {TARGET_P99_MS:g} ms")
    rows = []
    for t in (bare, real):
        rps = statistics.median(x["rps"] for x in t.rounds)
        p50 = statistics.median(ms(x["p50_us"]) for x in t.rounds)
        p99 = statistics.median(ms(x["p99_us"]) for x in t.rounds)
        if t is bare:
            rows.append([t.name, f"{rps:.0f}", f"{p50:.1f}", f"{p99:.1f}", "1.00", "(limit)", "-"])
            continue
        ratio = statistics.median(
            x["rps"] / b["rps"] for x, b in zip(t.rounds, bare.rounds, strict=True)
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
    print()
    answers, at_categories = stepped(args.redis_url, real.run_tag)
    assert real.database_url is not None
    written = database_rows(real.database_url)
    in_flight = real.sent - real.acknowledged - real.refused
    ok = real.acknowledged <= answers <= real.sent and at_categories == answers and written == 0
    print(
        f"Stepped vs acknowledged: requests sent {real.sent} = 200 responses {real.acknowledged} "
        f"+ non-2xx {real.refused} + in flight when wrk stopped {in_flight}; steps cached in "
        f"Redis {answers}, sessions at the category page {at_categories}, database rows "
        f"written {written}: {'OK' if ok else 'MISMATCH'}"
    )
    if real.wrapped:
        print(f"WARNING: wrk ran out of prepared sessions {real.wrapped} times: raise --cap")
    print()
    print("Commands")
    print(f"  {shlex.join([sys.executable, '-m', 'bench.ussd', *sys.argv[1:]])}  (cwd {ROOT})")
    for t in (bare, real):
        kind = "bare" if t.name == "bare" else "real"
        server = ["python", "-m", "bench.serve_app", kind, "--port", str(t.port)]
        load = wrk_command("wrk", t, args.seconds, "REQUESTS_FILE", args)
        print(f"  {t.name}: server  {shlex.join(server)}")
        print(f"  {t.name}: load    {shlex.join(load)}")


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def servers(args: argparse.Namespace) -> Iterator[tuple[UssdTarget, UssdTarget, Path]]:
    workdir = Path(tempfile.mkdtemp(prefix="ventanilla-bench-ussd-"))
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VENTANILLA_", "TWILIO_", "AT_"))
    }
    base_env.update(
        PYTHONUNBUFFERED="1",
        VENTANILLA_REDIS_URL=args.redis_url,
        VENTANILLA_AT_WEBHOOK_TOKEN=TOKEN,
        VENTANILLA_SIMULATOR="0",
    )
    bare = UssdTarget("bare", free_port(), dict(base_env))
    url = f"sqlite:///{workdir / 'bench.db'}"
    real_port = free_port()
    env = dict(
        base_env, VENTANILLA_DATABASE_URL=url, VENTANILLA_PUBLIC_URL=f"http://{HOST}:{real_port}"
    )
    real = UssdTarget("ussd", real_port, env, database_url=url)
    targets = [bare, real]
    try:
        migrate(env)
        for t in targets:
            start_server(t, workdir)
        yield bare, real, workdir
    finally:
        for t in targets:
            stop_server(t)
        if args.keep:
            print(f"bench: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.ussd",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per round")
    p.add_argument("--warmup", type=float, default=2.0, help="unreported seconds before each")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: 2 cores)")
    p.add_argument(
        "--cap",
        type=float,
        default=4000.0,
        help="prepare at least this many sessions per second of run (default 4000)",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("VENTANILLA_BENCH_USSD_REDIS_URL", DEFAULT_REDIS),
        help="Redis for the sessions (this run's keys are deleted at the end; nothing is flushed)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.rounds < 1:
        p.error("--seconds must be > 0, --warmup >= 0, --rounds >= 1")
    if args.seconds * args.rounds > 600:
        p.error("--seconds x --rounds over 600: keep the benchmark bounded")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    wrk = find_wrk()
    load = 2 * args.rounds * (args.seconds + args.warmup)
    print(
        f"bench: 2 targets x {args.rounds} rounds x ({args.warmup:g} s warm-up + "
        f"{args.seconds:g} s): about {load:.0f} s of load",
        flush=True,
    )
    started = time.monotonic()
    run_tag = os.getpid()
    try:
        with servers(args) as (bare, real, workdir):
            real.run_tag = run_tag
            feeds = {
                bare.name: Sessions(args.redis_url, run_tag, workdir, seed=False),
                real.name: Sessions(args.redis_url, run_tag, workdir, seed=True),
            }
            smoke(real, feeds[real.name])
            for r in range(args.rounds):
                for t in (bare, real):
                    if args.warmup > 0:
                        run_wrk(wrk, t, feeds[t.name], args.warmup, args)
                    result = run_wrk(wrk, t, feeds[t.name], args.seconds, args)
                    t.rounds.append(result)
                    print(
                        f"bench: round {r + 1} {t.name:6} {result['rps']:8.0f} req/s  "
                        f"p99 {ms(result['p99_us']):7.1f} ms  non-2xx {result['status_errors']}",
                        flush=True,
                    )
            time.sleep(1.0)  # let requests in flight when wrk stopped finish
            report(bare, real, args, wrk)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        forget(args.redis_url, run_tag)
    print(f"\nbench: done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
