"""Fitting client text into the registry's columns: lengths come from the models themselves.

Free text is clipped (message bodies are `Text` and kept whole); an identifier that would not
fit (a provider's MessageSid or sessionId) becomes a prefix and a digest of the whole value, so
the same long identifier always maps to the same stored one and redeliveries still deduplicate.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import InstrumentedAttribute

DIGEST_CHARS = 24  # hex characters of the digest that ends a shortened identifier


def column_length(attribute: InstrumentedAttribute[Any]) -> int | None:
    """The declared length of a model's string column (None for Text and other types)."""
    column = attribute.property.columns[0]
    kind = column.type
    return kind.length if isinstance(kind, String) else None


def clip(value: str, limit: int | None) -> str:
    """`value` cut to `limit` characters (unchanged when it fits or there is no limit)."""
    return value if limit is None or len(value) <= limit else value[:limit]


def fit_ref(value: str, limit: int | None) -> str:
    """An identifier that fits `limit`: unchanged when it does, else a prefix of it, "~" and
    a digest of the whole value (deterministic: the same input always gives the same output)."""
    if limit is None or len(value) <= limit:
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
    keep = max(limit - DIGEST_CHARS - 1, 0)
    return (value[:keep] + "~" + digest)[:limit]
