"""Findings: facts about the KV data that a person must see.

A finding names the data type, the key (``key#field`` for a record inside a
container key), what is wrong, and keeps an excerpt of the raw value, so an
undecodable value is reported and never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from phasegate.redact import mask_fields


class Severity(StrEnum):
    ERROR = "error"  # the data cannot be migrated as it is: fails the gate
    WARNING = "warning"  # migrated, but a person must look (conflicts, suspects)
    INFO = "info"  # normal for this app (dangling ids after cleanup, merges)


# Every kind of finding and why it has its severity.
KINDS: dict[str, Severity] = {
    # a value that cannot be decoded at all (bad JSON, invalid UTF-8, bad number)
    "undecodable": Severity.ERROR,
    # the key name belongs to a type but its Redis TYPE is not one we know
    "wrong_type": Severity.ERROR,
    # Postgres text and jsonb reject NUL characters
    "rejected_by_postgres": Severity.ERROR,
    # a key matching neither a mapped type nor the KV-only list
    "unmapped_key": Severity.ERROR,
    # a mapping's router sent a key to another bucket than its record's: the
    # record is compared against the wrong rows (a bug in the mapping, not the data)
    "misrouted": Severity.ERROR,
    # copies of one record (message in two schemes, ...) disagree on a field
    "conflicting_copies": Severity.WARNING,
    # handles that differ only by '-' and '_': maybe one person, never merged
    "suspected_duplicate": Severity.WARNING,
    # friends:{a} has b but friends:{b} lacks a
    "one_sided": Severity.WARNING,
    # an index key disagrees with the record it points at
    "index_mismatch": Severity.WARNING,
    # decodes, but unlikely as it is (a 1970 timestamp, a handle with spaces): migrated as is
    "implausible_value": Severity.WARNING,
    # several spellings of one handle folded into one canonical handle
    "merged_spellings": Severity.INFO,
    # an id in an index list whose record is gone (weekly cleanup): not data loss
    "dangling_id": Severity.INFO,
}


# Findings about several records in different buckets (a handle's spellings
# across keys, an index key and its record): only a decode of the whole keyspace
# (`phasegate inventory`) finds them exactly. The bucketed comparison pass and the
# backfill decode a bucket at a time, so they count and store only the other
# kinds, each about one record or key, or (one_sided) about records routed into
# one bucket: both directions of a friendship share the pair's bucket.
WHOLE_KEYSPACE_KINDS = frozenset(
    {"merged_spellings", "suspected_duplicate", "dangling_id", "index_mismatch"}
)


@dataclass(frozen=True)
class Finding:
    """One finding, immutable; ``raw`` is an escaped excerpt of the value."""

    type_id: str
    kind: str
    key: str
    detail: str
    field: str | None = None
    raw: str | None = None

    @property
    def severity(self) -> Severity:
        return KINDS[self.kind]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")

    def __str__(self) -> str:
        where = f"{self.key}" + (f" field {self.field}" if self.field else "")
        return f"[{self.severity}] {self.type_id}: {self.kind} at {where}: {self.detail}"


def excerpt(value: object, limit: int = 200) -> str:
    """A printable, bounded excerpt of a raw KV value (bytes are escaped, the
    values of fields named like secrets masked).

    >>> excerpt(b'{"a":\\xff}')
    '{"a":\\\\xff}'
    >>> excerpt({b"username": b"al", b"recoveryKey": b"k1"})
    "{b'username': b'al', b'recoveryKey': '***'}"
    """
    value = mask_fields(value)
    text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else repr(value)
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
