"""Per-sender send rates: how many messages per second one provider number may send.

Providers queue or refuse what a sender sends over its rate (Twilio: 1 segment/s per US long
code, 10/s for a number outside +1, ~100/s for a short code). Every worker process takes its
send times for a sender from one schedule in Redis (GCRA: the sender's next free slot, moved on
by one interval per message reserved), so the limit holds across processes and machines; a
message over the limit waits for its slot, it is never dropped.

Slots are spaced for 95% of the configured rate. A send goes out at or after its slot, often a
few milliseconds late (timers, a new connection, a busy machine); with exact spacing a late
message next to an on-time one would put limit + 1 messages inside one second at the provider.
Each worker process also keeps any limit + 1 of its own consecutive writes a second apart
(gateway/workers/jobs.py); the 5% headroom covers the seams between processes:
`limit + 1` consecutive slots span 1/0.95 s, so a message up to ~50 ms late still cannot crowd the
next process's.

    [delivery]
    max_per_second = 0        # every sender; 0 = no limit
    concurrency = 64          # provider requests in flight per worker process
    [delivery.per_sender]
    twilio = 10               # a provider's senders, or one sender:
    "twilio:+5491155550000" = 1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from casestore.config import Config, ConfigError
from gateway.rediskeys import keys_of

HEADROOM = 0.95


def send_interval(per_second: float) -> float:
    """Seconds between a sender's slots for a configured rate (0 = no limit)."""
    return 0.0 if per_second <= 0 else 1.0 / (per_second * HEADROOM)


@dataclass(frozen=True)
class DeliverySettings:
    """The `[delivery]` section: rates per sender and the worker's concurrency."""

    max_per_second: float = 0.0
    per_sender: Mapping[str, float] = field(default_factory=dict)
    concurrency: int = 64
    timeout_seconds: float = 10.0  # one provider request; a timeout is retried with backoff

    def rate_for(self, sender_key: str) -> float:
        """Messages per second for `provider:from` (0 = no limit): the sender's own entry,
        else its provider's, else `max_per_second`."""
        provider = sender_key.split(":", 1)[0]
        if sender_key in self.per_sender:
            return self.per_sender[sender_key]
        return self.per_sender.get(provider, self.max_per_second)


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100_000:
        raise ConfigError(f"{name} must be a number of messages per second from 0 to 100000")
    return float(value)


def delivery_settings(config: Config | None) -> DeliverySettings:
    """Read and check `[delivery]`; no section (or no config) means no limit."""
    section = config.raw.get("delivery", {}) if config is not None else {}
    if not isinstance(section, Mapping):
        raise ConfigError("[delivery] must be a table")
    per_sender = section.get("per_sender", {})
    if not isinstance(per_sender, Mapping):
        raise ConfigError("delivery.per_sender must be a table of sender = messages per second")
    concurrency = section.get("concurrency", 64)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError("delivery.concurrency must be a whole number of at least 1")
    return DeliverySettings(
        max_per_second=_rate(section.get("max_per_second", 0), "delivery.max_per_second"),
        per_sender={
            str(key): _rate(value, f"delivery.per_sender.{key}")
            for key, value in per_sender.items()
        },
        concurrency=min(concurrency, 1000),
        timeout_seconds=_timeout(section.get("timeout_seconds", 10)),
    )


def _timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 60:
        raise ConfigError("delivery.timeout_seconds must be a number of seconds from 0 to 60")
    return float(value)


# KEYS[1] the sender's next free slot (Redis server seconds); ARGV interval, count, max_wait.
# The server's clock is the one clock every process shares. Returns {reserved, wait}.
_RESERVE = """
local interval = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
if free < now then free = now end
local wait = free - now
if wait > max_wait then return {0, string.format('%.6f', wait)} end
local after = free + interval * count
local ttl = math.ceil((after - now) * 1000) + 60000
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX', ttl)
return {1, string.format('%.6f', wait)}
"""


class SendRate:
    """The shared schedule of every sender's send slots."""

    def __init__(self, connection: redis.Redis) -> None:
        self._script = connection.register_script(_RESERVE)
        self._prefix = keys_of(connection).send_rate

    def reserve(
        self, sender_key: str, count: int, interval: float, max_wait: float
    ) -> tuple[bool, float]:
        """Reserve `count` consecutive slots `interval` seconds apart: (True, seconds until the
        first). (False, wait) and nothing reserved if the first is more than `max_wait` away."""
        reserved, wait = self._script(
            keys=[self._prefix + sender_key], args=[interval, count, max_wait]
        )
        return bool(int(reserved)), float(wait)
