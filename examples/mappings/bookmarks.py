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

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from phasegate.handles import HandleBook
from phasegate.mappings.base import (
    Collector,
    Column,
    Decoded,
    KeyPattern,
    Mapping,
    Record,
    VariantEntry,
    suffix,
)
from phasegate.mappings.declare import Cmd, ReadPath, WriteOp, keys_of, where_equal
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


def kv_put(r: Record, _companions: Sequence[Record] = ()) -> Iterator[Cmd]:
    """The app's write: the entry id joins the handle's set."""
    yield ("SADD", f"bookmarks:{r['handle']}", r["entry_id"])


def kv_delete(r: Record) -> Iterator[Cmd]:
    yield ("SREM", f"bookmarks:{r['handle']}", r["entry_id"])


async def bookmark_add(state: Any, body: dict[str, Any], at: datetime) -> Any:
    """``POST /api/bookmarks {handle, entry_id}``: one bookmark put (a retry puts
    the same record again, which changes nothing)."""
    # Imported here: the writer machinery imports the mapping registry, which
    # imports this module.
    from phasegate.dualwrite.change import Change
    from phasegate.dualwrite.requests import handle, text_field

    change = Change("bookmark_add")
    record = {"handle": handle(body, "handle"), "entry_id": text_field(body, "entry_id", 64)}
    change.put("bookmarks", record)
    return change


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
    kv_put=kv_put,
    kv_delete=kv_delete,
    reads=(
        ReadPath(
            "bookmarks_of_handle",
            "/api/bookmarks",
            keys_of("bookmarks:{handle}"),
            where_equal(handle="handle"),
            order=(("entry_id", False),),
            weight=2,
        ),
    ),
    writes=(
        WriteOp(
            "bookmark_add",
            "POST",
            "/api/bookmarks",
            "bookmarks:bookmark_add",
            weight=1,
            load_sample="SELECT handle, entry_id FROM bookmarks ORDER BY 1, 2 LIMIT 200",
        ),
    ),
    queries=(str(Path(__file__).with_name("bookmarks_of_handle.sql")),),
    ddl="""
CREATE TABLE IF NOT EXISTS bookmarks (
    handle   text NOT NULL,
    entry_id text NOT NULL,
    PRIMARY KEY (handle, entry_id)
);
""",
)
