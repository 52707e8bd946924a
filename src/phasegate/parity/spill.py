"""The comparison pass's spill folder: one file per reader and work bucket.

Readers write KV entries, already split by record bucket, to ``kv<r>-<w>``: the
entries themselves, or, when the run's decode memos are expected to answer for
most buckets (:mod:`phasegate.parity.memo`), only where each is (type, variant,
key, TYPE, bucket): a worker then reads again from Redis the few keys of the
buckets it must decode (:attr:`Folder.reread`). The parent writes the fetched
Postgres rows to ``pg-<w>``; the digest step keeps the records of buckets that
differ in ``kept-<w>``, and the backfill's workers write the rows to load, as
COPY text, to ``rows-<w>-<type>``,
and then ``rows-<w>.done``. A file is a stream of pickled chunks, so
neither side holds more than a chunk of it at once.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from phasegate.stores import KvParams

CHUNK = 1000  # items per pickled chunk, at most
PENDING = 16_000  # items a writer holds unwritten across all its files, at most
KEYS_PER_WORK_BUCKET = 100_000  # a work bucket's share of the keyspace, about
MIN_WORK, MAX_WORK = 16, 1024


def work_buckets(keys: int) -> int:
    """How many work buckets a keyspace of ``keys`` keys is spilled into: a power of
    two (the record buckets divide evenly) keeping each near
    :data:`KEYS_PER_WORK_BUCKET`, so a worker's memory (a work bucket at a time)
    stays the same at any scale. 16 up to 1.6 million keys, 128 at 10 million.

    >>> work_buckets(0), work_buckets(884_791), work_buckets(8_847_910)
    (16, 16, 128)
    """
    wanted = -(-keys // KEYS_PER_WORK_BUCKET)
    return min(MAX_WORK, max(MIN_WORK, 1 << max(0, wanted - 1).bit_length()))


@dataclass(frozen=True)
class Folder:
    """Where a pass's files are: ``work`` work buckets written by ``readers`` readers;
    with ``reread``, the KV files hold where each entry is, not its value, and the
    values are read again from that server when needed; with ``routes``, each
    reader keeps its route memo there (:mod:`.routes`)."""

    path: Path
    work: int
    readers: int
    reread: KvParams | None = field(default=None, repr=False)  # holds the password
    routes: Path | None = None  # a file-name prefix in the memo folder

    def route_memo(self, reader: int) -> Path | None:
        if self.routes is None:
            return None
        return self.routes.with_name(f"{self.routes.name}-r{reader}of{self.readers}.routes")

    def drop_route_memos(self) -> None:
        """Remove every reader's route memo: the next pass splits each entry afresh."""
        for reader in range(max(1, self.readers)):
            path = self.route_memo(reader)
            if path is not None:
                path.unlink(missing_ok=True)

    def kv(self, reader: int, bucket: int) -> Path:
        return self.path / f"kv{reader}-{bucket:03d}.pickle"

    def kv_all(self, bucket: int) -> list[Path]:
        return [self.kv(r, bucket) for r in range(max(1, self.readers))]

    def pg(self, bucket: int) -> Path:
        return self.path / f"pg-{bucket:03d}.pickle"

    def kept(self, bucket: int) -> Path:
        return self.path / f"kept-{bucket:03d}.pickle"

    def rows(self, type_id: str, bucket: int) -> Path:
        """A work bucket's rows of one type as COPY text (the backfill's)."""
        return self.path / f"rows-{bucket:03d}-{type_id}.copy"

    def rows_done(self, bucket: int) -> Path:
        """Written once every type's rows of a work bucket are: how many rows each
        type wrote, as JSON (the backfill loads a work bucket when it appears)."""
        return self.path / f"rows-{bucket:03d}.done"


class Spill:
    """Files of pickled chunks of items, one per work bucket."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.files: list[IO[bytes]] = [p.open("wb") for p in paths]
        self.pending: list[list[tuple[Any, ...]]] = [[] for _ in paths]
        # Many files share one budget: memory stays a few thousand items however many.
        self.chunk = max(16, min(CHUNK, PENDING // max(1, len(paths))))

    def put(self, bucket: int, item: tuple[Any, ...]) -> None:
        pending = self.pending[bucket]
        pending.append(item)
        if len(pending) >= self.chunk:
            pickle.dump(pending, self.files[bucket], protocol=pickle.HIGHEST_PROTOCOL)
            pending.clear()

    def close(self) -> None:
        for bucket, pending in enumerate(self.pending):
            if pending and not self.files[bucket].closed:
                pickle.dump(pending, self.files[bucket], protocol=pickle.HIGHEST_PROTOCOL)
            self.files[bucket].close()


def read_chunks(path: Path) -> Iterator[tuple[Any, ...]]:
    """The items of a spill file, chunk by chunk (nothing when it does not exist)."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        while True:
            try:
                chunk: list[tuple[Any, ...]] = pickle.load(fh)
            except EOFError:
                return
            yield from chunk
