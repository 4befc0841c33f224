"""Every Redis key and rq queue name the app uses, under one deployment prefix.

Two deployments (or two test runs) that share a Redis database must never read each other's
menu sessions or take each other's jobs, so nothing in gateway/ spells a key itself: it asks
the `RedisKeys` bound to its client. The prefix is `[redis] prefix` of the deployment TOML
(overridable as VENTANILLA__REDIS__PREFIX), `ventanilla` by default — the keys an unconfigured
deployment has always used.

Layout under prefix P:
    P:menu:…        menu sessions (s:), answered steps (a:), resumable requests (r:),
                    USSD texts (t:) and dial counts (n:)
    P:live:…        the live queue, claims, operator legs, the version the views poll
    P:send-rate:…   each rate-limited sender's schedule
    P:missed:…      missed-call triggers already handled
    P:atvoice:…     Africa's Talking voice sessions (parties, step locks)
    P:voice:twilio:lock:…  Twilio voice step locks
    P:sim:call:…    the simulator's own calls
    P:login:fail:…  console log-in failures
rq: the queue is named P, and every job id starts with "P-", so rq's own keys
(rq:queue:P, rq:job:P-…, its registries) carry the prefix too.
"""

from __future__ import annotations

import os
import re
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

DEFAULT_PREFIX = "ventanilla"
OVERRIDE = "VENTANILLA__REDIS__PREFIX"  # the config override of [redis] prefix
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class RedisKeys:
    """Key and queue names of one deployment."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _VALID.match(self.prefix):
            raise ValueError(
                f"[redis] prefix must be letters, digits, '.', '_' or '-' (at most 64), "
                f"not {self.prefix!r}"
            )

    def _family(self, name: str) -> str:
        return f"{self.prefix}:{name}:"

    @property
    def menu(self) -> str:
        return self._family("menu")

    @property
    def live(self) -> str:
        return self._family("live")

    @property
    def send_rate(self) -> str:
        return self._family("send-rate")

    @property
    def missed(self) -> str:
        return self._family("missed")

    @property
    def atvoice(self) -> str:
        return self._family("atvoice")

    @property
    def twilio_voice_lock(self) -> str:
        return self._family("voice:twilio:lock")

    @property
    def simulator_call(self) -> str:
        return self._family("sim:call")

    @property
    def login_fail(self) -> str:
        return self._family("login:fail")

    @property
    def queue(self) -> str:
        """The rq queue this deployment's workers listen on."""
        return self.prefix

    def job_id(self) -> str:
        """A fresh rq job id that names the deployment (rq keys its job hashes by id)."""
        return f"{self.prefix}-{uuid.uuid4().hex}"

    def patterns(self) -> tuple[str, ...]:
        """SCAN patterns that match every key of this deployment, rq's included."""
        return (f"{self.prefix}:*", f"rq:*{self.prefix}*")


def default_keys(env: Mapping[str, str] | None = None) -> RedisKeys:
    """The process's keys when no config names them: VENTANILLA__REDIS__PREFIX or the default."""
    source = os.environ if env is None else env
    return RedisKeys(source.get(OVERRIDE, "").strip() or DEFAULT_PREFIX)


def keys_for_config(raw: Mapping[str, Any]) -> RedisKeys:
    """The keys of a deployment: its TOML's `[redis] prefix`, else the process default."""
    section = raw.get("redis", {})
    prefix = section.get("prefix") if isinstance(section, Mapping) else None
    if prefix is None or str(prefix).strip() == "":
        return default_keys()
    return RedisKeys(str(prefix).strip())


_bound: weakref.WeakKeyDictionary[redis.Redis, RedisKeys] = weakref.WeakKeyDictionary()


def bind(client: redis.Redis, keys: RedisKeys) -> redis.Redis:
    """Make `keys` the names every module uses with `client`; returns the client."""
    _bound[client] = keys
    return client


def keys_of(client: redis.Redis) -> RedisKeys:
    """The keys bound to `client` (see `bind`), else the process default."""
    keys = _bound.get(client)
    return keys if keys is not None else default_keys()


def delete_all(client: redis.Redis, keys: RedisKeys) -> int:
    """Delete every key of this deployment (SCAN, never FLUSHDB: the database may be shared)."""
    deleted = 0
    for pattern in keys.patterns():
        batch: list[bytes] = []
        for name in client.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
    client.srem("rq:queues", f"rq:queue:{keys.queue}")
    return deleted
