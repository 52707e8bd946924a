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
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import orjson

from phasegate.show import shown

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
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
# Deeper JSON is a finding, not a value: nothing downstream (comparison, jsonb
# encoding) may meet a nesting that reaches a recursion limit. The app nests 3 deep.
MAX_DEPTH = 100
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
    deep = data.count(b"[") + data.count(b"{") > MAX_DEPTH  # else it cannot be too deep
    if not _LONG_DIGITS.search(data):
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            fast_error = str(exc)
            if "recursion" in fast_error:
                raise DecodeError(f"JSON nested deeper than {MAX_DEPTH} levels", field) from None
        else:
            if deep:
                _check_depth(value, field)
            return value
    source = text(data, field)
    try:
        value = _STRICT.decode(source)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"bad JSON: {exc.msg} at char {exc.pos}", field) from None
    except RecursionError:
        raise DecodeError(f"JSON nested deeper than {MAX_DEPTH} levels", field) from None
    if fast_error is not None:  # json accepted what orjson refused: invalid Unicode
        raise DecodeError(f"bad JSON: {fast_error.split(':')[0]}", field)
    if deep:
        _check_depth(value, field)
    if _has_surrogate(value):  # only this rare path can produce them
        raise DecodeError("bad JSON: a string holds an unpaired surrogate", field)
    return value


def load_json_container(raw: bytes, field: str | None = None) -> list[Any] | dict[str, Any]:
    """A JSON array or object (a container of records) decoded element by element:
    an element holding invalid UTF-8 becomes a :class:`DecodeError` in its place
    and the others decode, so one bad byte does not lose the whole container.

    >>> items = load_json_container(b'[{"id": "a"}, {"id": "b\\xff"}]')
    >>> items[0], type(items[1]).__name__
    ({'id': 'a'}, 'BadElementError')
    """
    try:
        value = load_json(raw, field)
    except DecodeError as exc:
        if "UTF-8" not in exc.reason and "surrogate" not in exc.reason:
            raise
        value = salvage_json(raw)
        if value is None:
            raise exc from None
        if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
            _check_depth(value, field)
        if isinstance(value, list):
            return [_bad_element(v, field) if _has_surrogate(v) else v for v in value]
        if isinstance(value, dict):
            return {k: _bad_element(v, field) if _has_surrogate(v) else v for k, v in value.items()}
        raise exc from None
    if not isinstance(value, list | dict):
        raise DecodeError(f"expected a JSON array or object, got {type(value).__name__}", field)
    return value


def salvage_json(raw: bytes) -> Any:
    """JSON whose strings may hold invalid UTF-8 (kept as lone surrogates), so the
    good parts of a container can still be told apart; None if it is not JSON.

    >>> salvage_json(b'["a", "b\\xff"]')[1] == "b\\udcff"
    True
    """
    try:
        return _STRICT.decode(raw.decode("utf-8", "surrogateescape"))
    except (json.JSONDecodeError, RecursionError, DecodeError):
        return None


def dump_salvaged(value: object) -> bytes:
    """JSON bytes of a salvaged value, the invalid bytes written back as they were."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogateescape")


class BadElementError(DecodeError):
    """An element of a container that could not be decoded: its raw bytes, and its
    id when the element names one readably."""

    def __init__(self, reason: str, field: str | None, raw: bytes, ident: str | None) -> None:
        super().__init__(reason, field)
        self.raw = raw
        self.ident = ident


def _bad_element(value: object, field: str | None) -> BadElementError:
    ident = value.get("id") if isinstance(value, dict) else None
    readable = isinstance(ident, str) and not _has_surrogate(ident)
    return BadElementError(
        "invalid UTF-8 in this element", field, dump_salvaged(value), ident if readable else None
    )


def _nodes(value: object) -> Iterator[tuple[object, int]]:
    """Every node of a JSON value with its depth, without recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        if isinstance(node, dict):
            stack.extend((k, depth) for k in node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _check_depth(value: object, field: str | None) -> None:
    for _node, depth in _nodes(value):
        if depth > MAX_DEPTH:
            raise DecodeError(f"JSON nested deeper than {MAX_DEPTH} levels", field)


def _has_surrogate(value: object) -> bool:
    return any(
        isinstance(node, str) and not node.isascii() and bool(_SURROGATE.search(node))
        for node, _depth in _nodes(value)
    )


def has_nul(value: object) -> bool:
    """NUL anywhere in a JSON value's strings (keys included), without recursion."""
    return any(isinstance(node, str) and "\x00" in node for node, _depth in _nodes(value))


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
        raise DecodeError(f"expected a list of text, got {shown(value, 80)}", field)
    return list(value)


def base36(n: int) -> str:
    """``n`` in base 36, as the app writes ids (``msg_<base36 ms>...``).

    >>> base36(1767801301123)
    'mk4791tv'
    """
    out = ""
    while True:
        n, digit = divmod(n, 36)
        out = BASE36[digit] + out
        if n == 0:
            return out
