"""Reading requests: bounded bodies, form parsing that keeps blank fields, cleaning text that
the registry cannot store (see `gateway.clean_input`, which applies it to every request)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_BODY = 64 * 1024


class BadRequest(Exception):
    """A request refused before anything is stored; `status` is 400, 403 or 413."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refusing anything over `limit` bytes with 413 without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("bad Content-Length")
        if int(declared) > limit:
            raise BadRequest(f"body over {limit // 1024} KiB", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"body over {limit // 1024} KiB", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """Parse a urlencoded body. Blank fields are kept: providers sign them too."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise BadRequest("expected application/x-www-form-urlencoded")
    # Bytes that are not UTF-8 (raw or percent-escaped) become U+FFFD, as Starlette's own
    # form and query parsing does: a citizen's message is kept, not refused.
    text = body.decode("utf-8", "replace")
    pairs = parse_qsl(text, keep_blank_values=True, errors="replace")
    return dict(pairs)


async def read_form(request: Request) -> dict[str, str]:
    return parse_form(await read_body(request), request.headers.get("content-type"))


ID_MAX = 2**63 - 1  # the largest row id the databases store (PostgreSQL bigint)


def form_id(form: dict[str, str], name: str, default: int | None = None) -> int:
    """A row id from a form field: digits only, 1 up to a bigint; else 400 naming the field.
    An empty or absent field is `default` when one is given."""
    raw = form.get(name, "").strip()
    if not raw and default is not None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= ID_MAX:
        raise BadRequest(f"{name} must be a whole number (a record id), not {raw[:20]!r}")
    return int(raw)


def require(form: dict[str, str], *names: str) -> None:
    """400 naming the first missing or empty field."""
    for name in names:
        if not form.get(name, "").strip():
            raise BadRequest(f"missing field: {name}")


# ---------------------------------------------------------------- cleaning at the edge
# C0 controls but tab, line feed and carriage return (GSM-7 "@" arrives as NUL), and lone
# surrogates (a JSON "\ud800"): PostgreSQL refuses both, and no citizen means them.
_DIRTY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def _swap(match: re.Match[str]) -> str:
    return "" if match.group() < "\x20" else REPLACEMENT


def clean_text(value: str) -> str:
    """`value` without C0 controls (line breaks and tabs kept), lone surrogates as U+FFFD."""
    if _DIRTY.search(value) is None:
        return value
    return _DIRTY.sub(_swap, value)


def clean_json(value: Any) -> Any:
    """A parsed JSON document with every string (keys too) through `clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


RAW_BODY = "ventanilla.raw_body"  # scope key: the body as received, when cleaning changed it


def signed_fields(request: Request, form: dict[str, str]) -> dict[str, str]:
    """The fields as the provider sent them, for its signature: `form` is cleaned, but a
    signature covers the received bytes (a NUL included)."""
    raw: bytes | None = request.scope.get(RAW_BODY)
    if raw is None:
        return form
    text = raw.decode("utf-8", "replace")
    return dict(parse_qsl(text, keep_blank_values=True, errors="replace"))
