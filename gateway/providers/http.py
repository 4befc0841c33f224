"""The async HTTP transport every provider client shares: one pooled aiohttp session per
event loop, and the moment a request is written, for callers that pace their sends."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import aiohttp

FORM = "application/x-www-form-urlencoded"

# Set by a caller that paces its sends (`watch_write`): resolved with the loop's clock when the
# request of the send started in that context has been written to the connection, after any
# connection set-up, which is when the provider starts counting it.
_WRITTEN: ContextVar[asyncio.Future[float] | None] = ContextVar("written", default=None)


def watch_write() -> asyncio.Future[float]:
    """A future for when the next request is written, for a task created after this call in
    the current context (a task copies the context it is created in)."""
    future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    _WRITTEN.set(future)
    return future


async def on_request_written(_session: Any, _context: Any, _params: Any) -> None:
    """aiohttp's trace hook for "request headers sent": resolves the `watch_write` future."""
    future = _WRITTEN.get()
    if future is not None and not future.done():
        future.set_result(asyncio.get_running_loop().time())


class LoopSession:
    """One aiohttp session per event loop: a pooled session cannot move between loops."""

    def __init__(self, timeout: float, headers: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        """The running loop's session, opened on first use."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(on_request_written)
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                # Bounded by the caller's concurrency; the connector's own cap is a backstop.
                connector=aiohttp.TCPConnector(limit=256),
                trace_configs=[trace],
            )
            self._loop = loop
        return self._session

    async def close(self) -> None:
        """Close the session, if it was opened on the running loop."""
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None
        self._loop = None
