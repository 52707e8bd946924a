"""board: community posts from ``board:entry:{id}`` into ``board_entries``.

``board:entries`` (trimmed to the newest 100), ``board:category:{c}`` and
``board:user:{h}`` are derived index lists: checked for dangling ids and for
entries filed under the wrong category or author, never migrated. Most
entries are reachable only by scanning ``board:entry:*``.

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("entry", KvEntry("board:entry:e1", "string",
...     b'{"id":"e1","author":"@Ops-Agent","content":"hi","category":"idea",'
...     b'"tags":["x"],"timestamp":1767801301123,"pinned":true}'))])
>>> rec = out.records[("e1",)]
>>> rec["author"], rec["reactions"], rec["metadata"]
('ops-agent', None, {'pinned': True})
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from phasegate.handles import HandleBook, canonical_handle
from phasegate.keyspace import KvEntry
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
from phasegate.mappings.declare import (
    Cmd,
    Fetch,
    KvSource,
    Params,
    ReadPath,
    WriteOp,
    dumps,
    ms,
    pushed,
    where_equal,
)
from phasegate.values import DecodeError, load_object, text, to_str, to_str_list, to_timestamp

CATEGORIES = (
    "general",
    "idea",
    "shipped",
    "request",
    "riff",
    "claim",
    "observation",
    "games",
    "use-case",
    "question",
)
_CONSUMED = {"id", "author", "content", "category", "tags", "timestamp", "reactions", "comments"}


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    c = Collector("board")
    book = HandleBook("board")
    indexes: list[tuple[str, str, list[str]]] = []
    for variant, entry in entries:
        if variant != "entry":
            ids = []
            for i, element in enumerate(entry.elements()):
                with c.guard(f"{entry.key}#{i}", element):
                    ids.append(text(element))
            indexes.append((variant, entry.key, ids))
            continue
        with c.guard(entry.key, entry.value):
            assert isinstance(entry.value, bytes)
            obj = load_object(entry.value)
            entry_id = suffix(entry.key, "board:entry:")
            if obj.get("id", entry_id) != entry_id:
                c.finding("index_mismatch", entry.key, f"value names another id {obj['id']!r}")
            if not isinstance(obj.get("author"), str):
                raise DecodeError("entry has no author", "author")
            metadata = obj.get("metadata") or {}
            if not isinstance(metadata, dict):
                metadata = {"metadata": metadata}
            for name, value in obj.items():
                if name not in _CONSUMED and name != "metadata":
                    metadata.setdefault(name, value)
            c.put(
                (entry_id,),
                {
                    "id": entry_id,
                    "author": book.canonical(obj["author"], entry.key, "author"),
                    "content": to_str(obj.get("content"), "content"),
                    "category": to_str(obj.get("category"), "category"),
                    "tags": to_str_list(obj.get("tags"), "tags"),
                    "reactions": obj.get("reactions"),
                    "comments": obj.get("comments"),
                    "metadata": metadata,
                    "created_at": to_timestamp(obj.get("timestamp"), "timestamp"),
                },
                entry.key,
            )
    _check_indexes(c, indexes)
    c.out.findings.extend(book.findings())
    return c.out


def _check_indexes(c: Collector, indexes: list[tuple[str, str, list[str]]]) -> None:
    records = c.out.records
    for variant, key, ids in indexes:
        missing = [i for i in ids if (i,) not in records]
        if missing:
            c.finding(
                "dangling_id",
                key,
                f"{len(missing)} of {len(ids)} ids have no board:entry (e.g. {missing[0]})",
            )
        if variant in ("category", "user"):
            column = "category" if variant == "category" else "author"
            with c.guard(key, None):
                owner = suffix(key, f"board:{variant}:")
                if variant == "user":
                    owner = canonical_handle(owner)
                wrong = [i for i in ids if (i,) in records and records[(i,)][column] != owner]
                if wrong:
                    c.finding(
                        "index_mismatch",
                        key,
                        f"{len(wrong)} entries are not {column}={owner!r} (e.g. {wrong[0]})",
                    )


FEED_LENGTH = 100  # board:entries keeps the newest


def board_value(r: Record) -> dict[str, Any]:
    """A ``board:entry:{id}`` value that decodes back to ``r``."""
    return {
        "id": r["id"],
        "author": r["author"],
        "content": r["content"],
        "category": r["category"],
        "tags": r["tags"],
        "timestamp": ms(r["created_at"]),
        "reactions": r["reactions"],
        "comments": r["comments"],
        "metadata": r["metadata"],
    }


def _indexes(r: Record) -> tuple[str, ...]:
    return ("board:entries", f"board:category:{r['category']}", f"board:user:{r['author']}")


def kv_put(r: Record, _companions: Sequence[Record] = ()) -> Iterator[Cmd]:
    yield ("SET", f"board:entry:{r['id']}", dumps(board_value(r)))
    for key in _indexes(r):
        yield from pushed(key, r["id"], "LPUSH")
    yield ("LTRIM", "board:entries", 0, FEED_LENGTH - 1)


def kv_delete(r: Record) -> Iterator[Cmd]:
    yield ("DEL", f"board:entry:{r['id']}")
    for key in _indexes(r):
        yield ("LREM", key, 0, r["id"])


def listed(index: str) -> Fetch:
    """The entries an index list names (``{category}`` filled from the request)."""

    async def fetch(source: KvSource, p: Params) -> list[KvEntry]:
        ids = cast(list[bytes], await source.kv.lrange(index.format(**p), 0, -1))
        return await source.entries([f"board:entry:{i.decode(errors='replace')}" for i in ids])

    return fetch


NEWEST = (("created_at", True),)

MAPPING = Mapping(
    type_id="board",
    table="board_entries",
    columns=(
        Column("id", "text", key=True),
        Column("author", "text", handle=True),
        Column("content", "text"),
        Column("category", "text"),
        Column("tags", "text[]"),
        Column("reactions", "json"),
        Column("comments", "json"),
        Column("metadata", "json"),
        Column("created_at", "ts"),
    ),
    patterns=(
        KeyPattern("board:entry:*", "string", "entry"),
        KeyPattern("board:entries", "list", "feed", role="index"),
        KeyPattern("board:category:*", "list", "category", role="index"),
        KeyPattern("board:user:*", "list", "user", role="index"),
    ),
    decoder=decode,
    recency_column="created_at",
    summary="board:entry:{id} posts; feed/category/user lists checked",
    kv_put=kv_put,
    kv_delete=kv_delete,
    reads=(
        ReadPath("board_feed", "/api/board", listed("board:entries"), order=NEWEST, weight=10),
        ReadPath(
            "board_by_category",
            "/api/board",
            listed("board:category:{category}"),
            where_equal(category="category"),
            order=NEWEST,
            weight=4,
            load_fixed=(("limit", 20),),
        ),
    ),
    writes=(
        WriteOp(
            "board_post",
            "POST",
            "/api/board",
            "phasegate.dualwrite.ops:board_post",
            weight=2,
            load_sample="SELECT handle AS author FROM users ORDER BY handle LIMIT 200",
            load_body=(
                ("content", "shipped a thing"),
                ("category", "shipped"),
                ("tags", ["load"]),
            ),
        ),
    ),
)
