"""Answer once: a provider that redelivers a request gets the first answer back, nothing redone.

Every webhook a provider may send twice (a voice step, a survey key, the operator's answered
leg, a missed call) keeps its answer in Redis under a key naming the request, for as long as a
redelivery can come. `exclusive` serialises requests that must not run side by side (twin
deliveries of one voice step), with an expiry so a crashed holder never blocks a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import redis

log = logging.getLogger(__name__)

# str: the producer always answers; str | None: None means "nothing to answer", never kept.
Body = TypeVar("Body", str, str | None)

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


class Answers:
    """Answers kept under `prefix` + a request's name for `ttl` seconds."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    def key(self, name: str) -> str:
        """The Redis key of the answer to request `name`."""
        return self.prefix + name

    def get(self, name: str) -> str | None:
        """The answer given to `name`, if any."""
        raw = self.client.get(self.key(name))
        return raw.decode() if isinstance(raw, bytes) else raw

    def put(self, name: str, body: str) -> None:
        """Keep the answer to `name`."""
        self.client.set(self.key(name), body, ex=self.ttl)


async def answer_once(
    answers: Answers,
    name: str,
    produce: Callable[[], Awaitable[Body]],
    *,
    best_effort: bool = False,
) -> Body:
    """The answer already given to `name`, else `produce`'s, kept for a redelivery (None is
    not kept). With `best_effort` a Redis failure only costs the cache: the request's own
    effects must then be safe to repeat."""
    try:
        cached = answers.get(name)
    except redis.RedisError as exc:
        if not best_effort:
            raise
        log.warning("answer cache unavailable: %s", type(exc).__name__)
        cached = None
    if cached is not None:
        return cached
    body = await produce()
    if body is not None:
        try:
            answers.put(name, body)
        except redis.RedisError as exc:
            if not best_effort:
                raise
            log.warning("answer cache unavailable: %s", type(exc).__name__)
    return body


@contextlib.asynccontextmanager
async def exclusive(
    client: redis.Redis, key: str, *, hold_seconds: float, wait_seconds: float, poll: float = 0.02
) -> AsyncIterator[bool]:
    """Hold `key` while the block runs (SET NX with an expiry of `hold_seconds`), waiting up to
    `wait_seconds` for it; yields whether it is held. Only our own hold is released."""
    token = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    held = bool(client.set(key, token, nx=True, px=int(hold_seconds * 1000)))
    while not held and loop.time() < deadline:
        await asyncio.sleep(poll)
        held = bool(client.set(key, token, nx=True, px=int(hold_seconds * 1000)))
    try:
        yield held
    finally:
        if held:
            client.eval(_RELEASE, 1, key, token)
