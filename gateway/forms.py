"""Reading provider webhooks: bounded bodies, form parsing that keeps blank fields."""

from __future__ import annotations

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
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("body is not UTF-8") from exc
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed form body") from exc
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
