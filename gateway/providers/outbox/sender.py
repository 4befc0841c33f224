"""The outbox's SMS "sender": records each message and answers as a provider would."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from gateway.providers.base import CannotReconcile, SendResult
from gateway.providers.outbox.record import PROVIDER, Recorder


@dataclass(frozen=True)
class OutboxRecord:
    """One message the outbox sender recorded instead of sending."""

    provider_ref: str
    to: str
    body: str
    status_callback: str | None


class OutboxSender:
    """Records messages without sending them (the default provider; for development and demos)."""

    name: str = PROVIDER
    sender_key: str = PROVIDER

    def __init__(self, keep: int = 1000) -> None:
        self._recorder: Recorder[OutboxRecord] = Recorder(keep)

    @property
    def records(self) -> deque[OutboxRecord]:
        return self._recorder.records

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Record the message and answer as if a provider had accepted it."""
        ref = self._recorder.record(
            lambda ref: OutboxRecord(ref, to, body, status_callback),
            f"a message ({len(body)} characters)",
        )
        return SendResult(provider_ref=ref, status="recorded")

    async def send_sms_async(
        self, to: str, body: str, *, status_callback: str | None = None
    ) -> SendResult:
        return self.send_sms(to, body, status_callback=status_callback)

    async def aclose(self) -> None:
        return None

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        raise CannotReconcile("the outbox keeps no record across processes")


def sender_from_env(env: Mapping[str, str], *, timeout: float) -> OutboxSender:
    """The outbox needs no variable and sends nothing, so neither matters."""
    del env, timeout
    return OutboxSender()
