"""Single KV values decode exactly, and bad ones raise a DecodeError with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from phasegate.values import (
    DecodeError,
    hash_field,
    load_json,
    text,
    to_date,
    to_int,
    to_timestamp,
)

JAN7 = datetime(2026, 1, 7, 15, 55, 1, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-01-07T15:55:01.123Z",
        "2026-01-07T15:55:01.123456Z",
        "2026-01-07T16:55:01.123+01:00",
        "2026-01-07T15:55:01.123",
        1767801301123,
        "1767801301123",
        1767801301123.9,
    ],
)
def test_every_timestamp_encoding_becomes_utc_milliseconds(raw: object) -> None:
    """ISO text (any offset, naive as UTC) and epoch ms agree at ms precision."""
    assert to_timestamp(raw) == JAN7


@pytest.mark.parametrize("raw", [None, ""])
def test_a_missing_timestamp_stays_null(raw: object) -> None:
    """Missing is NULL, never now(): the app's own backfill rewrote history that way."""
    assert to_timestamp(raw) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (1767801301, "Unix seconds"),
        ("yesterday", "ISO-8601"),
        (True, "expected a timestamp"),
        (10**20, "out of range"),
    ],
)
def test_bad_timestamps_say_why(raw: object, reason: str) -> None:
    """Seconds, prose, booleans and absurd numbers are errors with a reason."""
    with pytest.raises(DecodeError, match=reason):
        to_timestamp(raw, "createdAt")


def test_hash_field_null_bytes_are_null() -> None:
    """A hash field written from a JS null arrives as b'null' and means NULL."""
    assert hash_field(b"null") is None
    assert hash_field(b"nullish") == "nullish"


def test_invalid_utf8_names_the_byte() -> None:
    """Invalid UTF-8 is an error that says where."""
    with pytest.raises(DecodeError, match="byte 2"):
        text(b"ab\xffcd")


@pytest.mark.parametrize("raw", [b'{"a":NaN}', b'{"a":', b"\xff"])
def test_bad_json_is_an_error(raw: bytes) -> None:
    """Truncated JSON, NaN and invalid UTF-8 are all decode errors."""
    with pytest.raises(DecodeError):
        load_json(raw)


def test_counters_and_dates() -> None:
    """Decimal strings are numbers; non-numbers and bad dates are errors."""
    assert to_int("42", "current") == 42
    assert to_date("2026-01-07", "lastActive") == date(2026, 1, 7)
    with pytest.raises(DecodeError, match="whole number"):
        to_int("twelve", "current")
    with pytest.raises(DecodeError, match="YYYY-MM-DD"):
        to_date("07/01/2026", "lastActive")
