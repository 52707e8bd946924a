"""The dual-write journal: every acknowledged write that one store missed.

An append-only JSON-lines file on local disk (fsync'd, locked), so it survives
the failure of either store. An entry holds what it takes to replay the write:
the whole :class:`~phasegate.dualwrite.change.Change` (every record put or
deleted, timestamps tagged) and which side missed it. Replaying marks an entry
done with a second line; :meth:`Journal.pending` is what is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from phasegate.dualwrite.change import Change

Side = Literal["pg", "kv"]
DEFAULT_JOURNAL = Path("reports/dual-write-journal.jsonl")  # `phasegate serve` writes it


@dataclass(frozen=True)
class Entry:
    id: str
    at_ms: int
    op: str
    failed: Side
    error: str
    change: dict[str, Any]  # Change.to_json()

    @property
    def type_ids(self) -> list[str]:
        return sorted({s["type"] for s in self.change["steps"]})

    @property
    def labels(self) -> list[str]:
        """``type:key`` of every record the entry touches."""
        return Change.from_json(self.change).labels()


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, change: dict[str, Any], *, failed: Side, error: str) -> Entry:
        """Append one missed write, durably (fsync) before returning."""
        entry = Entry(
            f"j_{secrets.token_hex(8)}",
            int(time.time() * 1000),
            str(change["op"]),
            failed,
            error[:500],
            change,
        )
        self._append({"entry": asdict(entry)})
        return entry

    def done(self, entry: Entry, *, refused: str | None = None) -> None:
        """Mark an entry replayed (or, with ``refused``, set aside: the store refused
        its data, so it can never land; reconcile reports the gap)."""
        line: dict[str, object] = {"done": entry.id, "at_ms": int(time.time() * 1000)}
        if refused is not None:
            line["refused"] = refused[:500]
        self._append(line)

    def refused(self) -> list[tuple[str, str]]:
        """(entry id, why) of entries set aside."""
        return [(line["done"], line["refused"]) for line in self._lines() if "refused" in line]

    def entries(self) -> Iterator[Entry]:
        for line in self._lines():
            if "entry" in line:
                yield Entry(**line["entry"])

    def pending(self) -> list[Entry]:
        """Entries not yet replayed, oldest first."""
        finished = {line["done"] for line in self._lines() if "done" in line}
        return [e for e in self.entries() if e.id not in finished]

    def _lines(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        with self.path.open() as fh:
            for number, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                try:
                    yield json.loads(text)
                except json.JSONDecodeError:
                    if text.endswith("\n"):  # a torn last line (crash mid-append) is not an error
                        raise ValueError(f"{self.path}:{number}: not a journal line") from None

    def _append(self, line: dict[str, object]) -> None:
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
