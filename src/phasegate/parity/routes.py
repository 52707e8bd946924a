"""Route memos: where a reader's entries went last run, so an unchanged one is not split again.

With decode memos a reader hashes every mapped entry anyway (:mod:`.memo`). Most
of its remaining work is *routing*: parsing each value and hashing its record
key to find the digest bucket of each part (:func:`~.buckets.split`). A route
memo keeps, per entry, the hash of the whole entry (type, variant, key, TYPE
and value: :func:`~.memo.item_hash`) and where its parts went:

- a bucket, when the entry went whole to one bucket (most STRINGs): its part's
  hash is the entry's own;
- else a tuple of ``(bucket, TYPE, part hash)`` per part.

An entry whose whole hash is in the memo is routed from it, byte for byte the
same entry as the one split before (the memo folder is keyed by the code that
routes, like the decode memos). An entry that is not, or a part whose value a
spill of values needs, is split as without a memo. So a route memo can make a
pass faster, never different; a worker that reads a bucket again re-splits it
and keeps no decode memo when it disagrees (:func:`~.decode._unchanged`).

Memory stays one batch: each reader writes, per batch of key names it reads,
one pickled dict to a file of its own, and on the next run reads that file in
step. SCAN walks an unchanged keyspace in the same order, so batch ``k`` then
holds the keys it held before; where it does not (keys added, a rehash), the
entries not found are split. Each file is written aside and renamed at the end,
so a pass that fails keeps the last good one.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import IO

Route = int | tuple[tuple[int, str, int], ...]
Batch = dict[int, Route]  # whole-entry hash -> route


class RouteMemo:
    """One reader's route memo: last run's batches read in step, this run's written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.old: IO[bytes] | None = path.open("rb")
        except OSError:
            self.old = None
        fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".part-routes-")
        self.aside = Path(aside)
        self.new = os.fdopen(fd, "wb")

    def last(self) -> Batch:
        """Last run's routes of the batch at this place in the reader's order."""
        if self.old is None:
            return {}
        try:
            batch = pickle.load(self.old)
        except (EOFError, OSError, pickle.UnpicklingError, AttributeError, ImportError):
            batch = None
        if not isinstance(batch, dict):  # past its end, or not a memo: no more
            self.old.close()
            self.old = None
            return {}
        return batch

    def keep(self, batch: Batch) -> None:
        pickle.dump(batch, self.new, protocol=pickle.HIGHEST_PROTOCOL)

    def close(self, *, ok: bool) -> None:
        """Replace the memo with this run's (``ok``), or leave the last one."""
        if self.old is not None:
            self.old.close()
        self.new.close()
        if ok:
            os.replace(self.aside, self.path)
        else:
            self.aside.unlink(missing_ok=True)
