"""Every request's text cleaned once, before any route reads it.

An ASGI middleware: the query string, urlencoded and multipart form bodies and JSON bodies go
through `gateway.forms.clean_text` (no C0 controls but line breaks and tabs, lone surrogates as
U+FFFD; bytes that are not UTF-8 become U+FFFD where forms and queries are decoded). Clean
requests pass untouched and cost a scan of the bytes; a request that was changed keeps its
received body under `forms.RAW_BODY` in the scope and its received query string under
`RAW_QUERY`, because a Twilio signature covers what was sent.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.forms import MAX_BODY, RAW_BODY, clean_json, clean_text

RAW_QUERY = "ventanilla.raw_query"

# Raw control bytes, or percent-escaped ones (but %09 %0A %0D): something to clean. Two
# simple patterns scan faster than one alternation (this runs on every webhook).
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_ESCAPED_CONTROL = re.compile(rb"%(?:0[0-8bcefBCEF]|1[0-9a-fA-F])")
# JSON escapes of a control character or of a surrogate, or raw control bytes (invalid JSON,
# left for the route to refuse, unless there is also an escape to clean).
_JSON_DIRTY = re.compile(rb"\\u00[01][0-9a-fA-F]|\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_MULTIPART_CONTROL = _RAW_CONTROL


def form_needs_cleaning(data: bytes) -> bool:
    """Whether an urlencoded string holds control characters, raw or percent-escaped.
    (Bytes that are not UTF-8 become U+FFFD where forms and queries are parsed.)"""
    return bool(_RAW_CONTROL.search(data) or _ESCAPED_CONTROL.search(data))


def clean_form(data: bytes) -> bytes:
    """An urlencoded string re-encoded with every name and value cleaned (order kept)."""
    text = data.decode("utf-8", "replace")
    pairs = parse_qsl(text, keep_blank_values=True, errors="replace")
    return urlencode([(clean_text(k), clean_text(v)) for k, v in pairs]).encode("ascii")


def clean_json_body(data: bytes) -> bytes | None:
    """The JSON body with its strings cleaned; None when it is not JSON (the route says so)."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return json.dumps(clean_json(document), ensure_ascii=False).encode("utf-8")


def clean_body(media: str, data: bytes) -> bytes | None:
    """The cleaned body, or None when it needs no change."""
    if media == "application/x-www-form-urlencoded":
        return clean_form(data) if form_needs_cleaning(data) else None
    if media == "multipart/form-data":
        # The framing is printable ASCII and CRLF, so dropping control bytes keeps it valid;
        # the console has no file uploads, whose bytes must not be touched.
        if b"filename=" in data or not _MULTIPART_CONTROL.search(data):
            return None
        return _MULTIPART_CONTROL.sub(b"", data)
    if _JSON_DIRTY.search(data):
        return clean_json_body(data)  # whatever the declared type: routes may parse JSON anyway
    return None


def _media(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1").split(";")[0].strip().lower())
    return ""


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class CleanInputMiddleware:
    """Clean query strings and bodies of HTTP requests (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if query and form_needs_cleaning(query):
            scope = dict(scope)
            scope[RAW_QUERY] = query
            scope["query_string"] = clean_form(query)
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > MAX_BODY:
            await self.app(scope, receive, send)  # the route refuses it (413) unread
            return
        chunks, complete = await _read_up_to(receive, MAX_BODY)
        if not complete:  # over the limit: hand it on as it came, the route refuses it (413)
            await self.app(scope, _replay(chunks, receive, complete=False), send)
            return
        body = b"".join(chunks)
        cleaned = clean_body(_media(scope), body)
        if cleaned is not None:
            scope = dict(scope)
            scope[RAW_BODY] = body
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"] + [
                (b"content-length", str(len(cleaned)).encode())
            ]
            body = cleaned
        await self.app(scope, _replay([body], receive, complete=True), send)


async def _read_up_to(receive: Receive, limit: int) -> tuple[list[bytes], bool]:
    """The body's chunks, and whether that is all of it; reading stops past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return chunks, True
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return chunks, True
        if size > limit:
            return chunks, False


def _replay(chunks: list[bytes], receive: Receive, *, complete: bool) -> Receive:
    """A `receive` that gives `chunks` first, then (when the body is not complete) hands over
    to the original `receive` for the rest."""
    pending = list(chunks)

    async def replay() -> Message:
        if pending:
            chunk = pending.pop(0)
            return {
                "type": "http.request",
                "body": chunk,
                "more_body": bool(pending) or not complete,
            }
        return await receive()

    return replay
