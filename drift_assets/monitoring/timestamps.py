"""The one ISO 8601 parser: results documents, registry pointers and the monitors file use it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_timestamp(value: Any, *, where: str = "timestamp") -> datetime:
    """ISO 8601 text (``Z`` or an offset; naive means UTC) -> aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{where}: not an ISO 8601 timestamp: {value!r}") from exc
    else:
        raise ValueError(f"{where}: expected an ISO 8601 timestamp, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
