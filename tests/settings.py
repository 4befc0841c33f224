"""Where the test suite finds its real services (the machine's PostgreSQL and Redis)."""

from __future__ import annotations

import os
import secrets

POSTGRES_ADMIN_URL = os.environ.get(
    "VENTANILLA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("VENTANILLA_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# Each run owns only the keys and rq queues under its own prefix: another run (or anything else)
# may share the Redis database, so the suite deletes its own keys, never the database.
REDIS_PREFIX = f"vt{os.getpid()}-{secrets.token_hex(4)}"
# Read by everything that names Redis keys without a config of its own (gateway.rediskeys) and
# passed on to the gateways and workers the tests start as processes.
os.environ["VENTANILLA__REDIS__PREFIX"] = REDIS_PREFIX
