"""Where the test suite finds its real services (the machine's PostgreSQL and Redis)."""

from __future__ import annotations

import os

POSTGRES_ADMIN_URL = os.environ.get(
    "VENTANILLA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# The suite owns this Redis database index and flushes it around every test.
REDIS_URL = os.environ.get("VENTANILLA_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
