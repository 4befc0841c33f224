"""Before the suite: PostgreSQL and Redis must answer, or the run stops saying how to start them."""

from __future__ import annotations

import sys

import psycopg
import redis

from tests.settings import POSTGRES_ADMIN_URL, REDIS_URL

HOW = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": (
        'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
    ),
}


def main() -> int:
    problems = []
    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=5).close()
    except Exception as exc:
        problems.append(("PostgreSQL", POSTGRES_ADMIN_URL, exc))
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except Exception as exc:
        problems.append(("Redis", REDIS_URL, exc))
    for name, url, exc in problems:
        print(f"{name} is not reachable at {url}: {exc}", file=sys.stderr)
        print(f"  start it with: {HOW[name]}", file=sys.stderr)
        print(
            "  or point the tests elsewhere with VENTANILLA_TEST_POSTGRES_URL /"
            " VENTANILLA_TEST_REDIS_URL",
            file=sys.stderr,
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
