"""The outbox's "caller": records each call (the simulator can answer it)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from gateway.providers.base import CallResult, CannotReconcile
from gateway.providers.outbox.record import PROVIDER, Recorder


@dataclass(frozen=True)
class RecordedCall:
    """One call the outbox caller recorded instead of placing."""

    provider_ref: str
    to: str
    url: str | None


class OutboxCaller:
    """Records calls without placing them (the default; the simulator can answer them)."""

    name: str = PROVIDER

    def __init__(self, keep: int = 1000) -> None:
        self._recorder: Recorder[RecordedCall] = Recorder(keep)

    @property
    def records(self) -> deque[RecordedCall]:
        return self._recorder.records

    def place_call(self, to: str, *, url: str | None, status_callback: str | None) -> CallResult:
        """Record the call and answer as if a provider were dialling."""
        ref = self._recorder.record(lambda ref: RecordedCall(ref, to, url), "a call")
        return CallResult(provider_ref=ref, status="recorded")

    def find_placed(self, to: str, since: datetime) -> str | None:
        raise CannotReconcile("the outbox keeps no calls across processes")


def caller_from_env(env: Mapping[str, str]) -> OutboxCaller:
    """The outbox needs no variable."""
    del env
    return OutboxCaller()
