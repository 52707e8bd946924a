"""bookmarks: the board entries a user saved, ``bookmarks:{handle}`` SETs of entry ids.

An example of a data type of your own, declared in one module and added to
phasegate's registry with ``PHASEGATE_MAPPINGS=bookmarks`` (this folder on
``PYTHONPATH``) or ``mappings = "bookmarks"`` in ``[tool.phasegate]``. See
docs/adding-a-data-type.md.

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("set", KvEntry("bookmarks:@Al", "set", {b"e2", b"e1"}))])
>>> sorted(out.records)
[('al', 'e1'), ('al', 'e2')]
"""

from __future__ import annotations

from collections.abc import Iterable

from phasegate.handles import HandleBook
from phasegate.mappings.base import (
    Collector,
    Column,
    Decoded,
    KeyPattern,
    Mapping,
    VariantEntry,
    suffix,
)
from phasegate.values import text


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    """Every member of every ``bookmarks:{handle}`` set is one record."""
    c = Collector("bookmarks")
    book = HandleBook("bookmarks")
    for _variant, entry in entries:
        assert isinstance(entry.value, set)
        with c.guard(entry.key, None):
            handle = book.canonical(suffix(entry.key, "bookmarks:"), entry.key)
            for member in sorted(entry.value):
                with c.guard(entry.key, member):
                    entry_id = text(member, "entry_id")
                    c.put((handle, entry_id), {"handle": handle, "entry_id": entry_id}, entry.key)
    c.out.findings.extend(book.findings())
    return c.out


MAPPING = Mapping(
    type_id="bookmarks",
    table="bookmarks",
    columns=(
        Column("handle", "text", key=True, handle=True),
        Column("entry_id", "text", key=True),
    ),
    patterns=(KeyPattern("bookmarks:*", "set", "set"),),
    decoder=decode,
    summary="bookmarks:{handle} sets of board entry ids, one row per entry",
    ddl="""
CREATE TABLE IF NOT EXISTS bookmarks (
    handle   text NOT NULL,
    entry_id text NOT NULL,
    PRIMARY KEY (handle, entry_id)
);
""",
)
