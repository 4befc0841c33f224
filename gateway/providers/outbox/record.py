"""What the outbox keeps instead of sending: the last records, bounded, safe across threads."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

PROVIDER = "outbox"

T = TypeVar("T")


class Recorder(Generic[T]):
    """The last `keep` records (bounded, so a long-running server in outbox mode does not
    grow without limit), each under a fresh reference that reads like a provider's."""

    def __init__(self, keep: int) -> None:
        self.records: deque[T] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def record(self, make: Callable[[str], T], what: str) -> str:
        """Keep `make(reference)` and return the reference; `what` names it in the log."""
        ref = "outbox-" + uuid.uuid4().hex
        with self._lock:
            self.records.append(make(ref))
        logger.info("outbox recorded %s %s", what, ref)
        return ref
