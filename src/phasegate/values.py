"""Decoding of single KV values: text, JSON, hash fields, numbers, timestamps.

Every function raises :class:`DecodeError` with a reason a person can act on;
the mappings turn that into a finding naming the key.

>>> to_timestamp("2026-01-07T15:55:01.123456Z").isoformat()
'2026-01-07T15:55:01.123000+00:00'
>>> to_timestamp(1767801301123).isoformat()
'2026-01-07T15:55:01.123000+00:00'
>>> to_timestamp(None) is None
True
>>> hash_field(b"null") is None
True
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

import orjson

# Epoch milliseconds below this are almost surely Unix seconds (before 1973 in ms).
_MIN_EPOCH_MS = 100_000_000_000


class DecodeError(ValueError):
    """A KV value that cannot be decoded; ``field`` names where, if known."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def text(raw: bytes, field: str | None = None) -> str:
    """Bytes to str, strictly UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 at byte {exc.start}", field) from None


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"JSON constant {name} is not valid JSON")


_STRICT = json.JSONDecoder(parse_constant=_reject_constant)
# orjson reads integers beyond 64 bits as floats, silently; such text goes to json.
_LONG_DIGITS = re.compile(rb"\d{16,}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(raw: bytes | str, field: str | None = None) -> Any:
    """Parse JSON text: strict UTF-8, no NaN/Infinity, no unpaired surrogates.

    >>> load_json(b'{"n": 123456789012345678901234567890}')
    {'n': 123456789012345678901234567890}
    """
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    fast_error = None
    if not _LONG_DIGITS.search(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            fast_error = str(exc)
    source = text(data, field)
    try:
        value = _STRICT.decode(source)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"bad JSON: {exc.msg} at char {exc.pos}", field) from None
    except RecursionError:
        raise DecodeError("JSON nested too deeply", field) from None
    if fast_error is not None:  # json accepted what orjson refused: invalid Unicode
        raise DecodeError(f"bad JSON: {fast_error.split(':')[0]}", field)
    if _has_surrogate(value):  # only this rare path can produce them
        raise DecodeError("bad JSON: a string holds an unpaired surrogate", field)
    return value


def _has_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return not value.isascii() and bool(_SURROGATE.search(value))
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def load_object(raw: bytes | str, field: str | None = None) -> dict[str, Any]:
    value = load_json(raw, field)
    if not isinstance(value, dict):
        raise DecodeError(f"expected a JSON object, got {type(value).__name__}", field)
    return value


def hash_field(raw: bytes | None) -> str | None:
    """A hash field as written by the app: the bytes ``null`` are NULL."""
    if raw is None:
        return None
    value = text(raw)
    return None if value == "null" else value


def to_int(value: object, field: str) -> int | None:
    """An integer from a JSON number or decimal string; NULL stays NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DecodeError(f"expected a number, got {value!r}", field)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lstrip("-").isdigit():
            return int(stripped)
    raise DecodeError(f"expected a whole number, got {value!r}", field)


def to_bool(value: object, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in ("true", "1", 1):
        return True
    if value in ("false", "0", 0):
        return False
    raise DecodeError(f"expected true/false, got {value!r}", field)


def to_str(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise DecodeError(f"expected text, got {type(value).__name__}", field)


def to_timestamp(value: object, field: str = "timestamp") -> datetime | None:
    """ISO-8601 text or epoch milliseconds to a UTC datetime at ms precision.

    A missing timestamp is NULL, never now(): inventing one rewrites history.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise DecodeError(f"expected a timestamp, got {value!r}", field)
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, int | float):
        if abs(value) < _MIN_EPOCH_MS:
            raise DecodeError(f"{value!r} looks like Unix seconds, not milliseconds", field)
        try:
            moment = datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        except (OverflowError, ValueError, OSError):
            raise DecodeError(f"epoch milliseconds out of range: {value!r}", field) from None
        return _ms(moment)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise DecodeError(f"not an ISO-8601 timestamp: {value!r}", field) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return _ms(moment.astimezone(UTC))
    raise DecodeError(f"expected a timestamp, got {type(value).__name__}", field)


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def to_date(value: object, field: str) -> date | None:
    """A ``YYYY-MM-DD`` date (streaks); NULL stays NULL."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DecodeError(f"expected a YYYY-MM-DD date, got {value!r}", field)
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise DecodeError(f"not a YYYY-MM-DD date: {value!r}", field) from None


def to_str_list(value: object, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DecodeError(f"expected a list of text, got {value!r:.80}", field)
    return list(value)
