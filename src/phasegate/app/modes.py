"""Read source and write mode per data type, from flags or the environment.

``PHASEGATE_READ_<TYPE>=kv|pg`` and ``PHASEGATE_WRITE_<TYPE>=kv|dual|pg`` (or
``--read TYPE=SRC`` / ``--write TYPE=MODE``, and ``--read-all`` /
``--write-all`` for every type). Defaults: read ``kv``, write ``kv``: the app
before dual-write.

>>> m = Modes.parse(["messages=pg"], ["board=dual"], read_all="kv", write_all="kv", env={})
>>> m.read["messages"], m.read["users"], m.write["board"]
('pg', 'kv', 'dual')
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from phasegate.errors import UsageError
from phasegate.mappings import TYPE_IDS

ReadSource = Literal["kv", "pg"]
WriteMode = Literal["kv", "dual", "pg"]
READ_SOURCES = ("kv", "pg")
WRITE_MODES = ("kv", "dual", "pg")


@dataclass(frozen=True)
class Modes:
    read: dict[str, ReadSource]
    write: dict[str, WriteMode]

    @classmethod
    def parse(
        cls,
        reads: Iterable[str] = (),
        writes: Iterable[str] = (),
        *,
        read_all: str = "kv",
        write_all: str = "kv",
        env: Mapping[str, str] | None = None,
    ) -> Modes:
        """Flags beat ``PHASEGATE_READ_<TYPE>``/``PHASEGATE_WRITE_<TYPE>``, which beat
        the ``*_all`` defaults."""
        env = os.environ if env is None else env
        read = {
            t: _one(env.get(f"PHASEGATE_READ_{t.upper()}") or read_all, READ_SOURCES, t)
            for t in TYPE_IDS
        }
        write = {
            t: _one(env.get(f"PHASEGATE_WRITE_{t.upper()}") or write_all, WRITE_MODES, t)
            for t in TYPE_IDS
        }
        for item in reads:
            type_id, value = _pair(item, "--read")
            read[type_id] = _one(value, READ_SOURCES, type_id)
        for item in writes:
            type_id, value = _pair(item, "--write")
            write[type_id] = _one(value, WRITE_MODES, type_id)
        return cls(read, write)  # type: ignore[arg-type]

    def describe(self) -> str:
        return ", ".join(f"{t} read {self.read[t]} write {self.write[t]}" for t in TYPE_IDS)


def _pair(item: str, flag: str) -> tuple[str, str]:
    type_id, sep, value = item.partition("=")
    if not sep or type_id not in TYPE_IDS:
        raise UsageError(
            f"{flag} {item!r}: expected TYPE=VALUE with TYPE one of {', '.join(TYPE_IDS)}"
        )
    return type_id, value


def _one(value: str, allowed: tuple[str, ...], type_id: str) -> str:
    if value not in allowed:
        raise UsageError(f"{type_id}: {value!r} is not one of {', '.join(allowed)}")
    return value
