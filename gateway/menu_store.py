"""Menu sessions in Redis: state with a TTL, cached answers per step, resumable new requests.

Its own module so the runtime can hold one without importing the menu runner (which needs the
runtime): no import cycle.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import redis

from gateway.answer_once import Answers
from gateway.rediskeys import keys_of
from ivr.machine import State


def decode_state(raw: bytes | str | None) -> State | None:
    """A stored menu state; None when absent or written in another shape."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        data["trail"] = tuple(data.get("trail", ()))
        return State(**data)
    except (ValueError, TypeError):
        return None  # a session written by another version: start over


class SessionStore:
    """Menu sessions, cached answers and resumable new requests, in Redis."""

    def __init__(self, client: redis.Redis, ttl: int, resume_seconds: int) -> None:
        self.client = client
        self.prefix = keys_of(client).menu  # this deployment's menu keys
        self.ttl = ttl
        self.resume_seconds = resume_seconds
        self.answers = Answers(client, self.prefix + "a:", ttl)  # cached answers, per step

    def state_key(self, key: str) -> str:
        """The Redis key of session `key`'s menu state."""
        return self.prefix + "s:" + key

    def load(self, key: str) -> State | None:
        return decode_state(self.client.get(self.state_key(key)))

    def save(self, key: str, state: State) -> None:
        self.client.set(self.state_key(key), json.dumps(asdict(state)), ex=self.ttl)

    def drop(self, key: str) -> None:
        self.client.delete(self.state_key(key))

    def keep_resumable(self, phone: str, state: State) -> None:
        self.client.set(
            self.prefix + "r:" + phone, json.dumps(asdict(state)), ex=self.resume_seconds
        )

    def take_resumable(self, phone: str) -> State | None:
        key = self.prefix + "r:" + phone
        raw = self.client.get(key)
        self.client.delete(key)
        return decode_state(raw)

    def forget_resumable(self, phone: str) -> None:
        self.client.delete(self.prefix + "r:" + phone)
