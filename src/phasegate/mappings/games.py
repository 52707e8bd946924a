"""games: the ``vibe:games`` STRING, a JSON object of game id -> game.

Each game ``{id, type, players[], state, winner?, created_at, updated_at}``
becomes a ``games`` row; players are canonical handles (the GIN index on
``players`` serves ``players @> ARRAY[...]``).

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("registry", KvEntry("vibe:games", "string",
...     b'{"g1":{"id":"g1","type":"chess","players":["@Al","bo"],"state":{"fen":"x"},'
...     b'"created_at":1767801301123,"updated_at":"2026-01-07T15:55:02Z"}}'))])
>>> rec = out.records[("g1",)]
>>> rec["players"], rec["game_type"], rec["winner"]
(['al', 'bo'], 'chess', None)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from phasegate.handles import HandleBook
from phasegate.keyspace import KvEntry
from phasegate.mappings.base import (
    Collector,
    Column,
    Decoded,
    KeyPattern,
    Mapping,
    Record,
    VariantEntry,
)
from phasegate.mappings.declare import Cmd, ReadPath, WriteOp, dumps, iso, keys_of
from phasegate.mappings.routing import bucket_of, split_json
from phasegate.values import BadElementError, DecodeError, load_json_container, to_str, to_timestamp

GAME_TYPES = ("chess", "tictactoe", "werewolf", "twotruths", "hangman", "20questions")
_CONSUMED = {"id", "type", "players", "state", "winner", "created_at", "updated_at"}


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    c = Collector("games")
    book = HandleBook("games")
    for _variant, entry in entries:
        with c.guard(entry.key, entry.value):
            assert isinstance(entry.value, bytes)
            games = load_json_container(entry.value)
            if not isinstance(games, dict):
                raise DecodeError("vibe:games is not a JSON object")
            for game_id, game in games.items():
                where = f"{entry.key}#{game_id}"
                with c.guard(where, game.raw if isinstance(game, BadElementError) else game):
                    if isinstance(game, BadElementError):
                        raise game
                    if not isinstance(game, dict):
                        raise DecodeError("game is not a JSON object")
                    if game.get("id", game_id) != game_id:
                        raise DecodeError(f"entry {game_id!r} holds game {game['id']!r}", "id")
                    players = game.get("players") or []
                    if not isinstance(players, list) or not all(
                        isinstance(p, str) for p in players
                    ):
                        raise DecodeError("players is not a list of handles", "players")
                    winner = game.get("winner")
                    extra = {k: v for k, v in game.items() if k not in _CONSUMED}
                    c.put(
                        (game_id,),
                        {
                            "id": game_id,
                            "game_type": to_str(game.get("type"), "type"),
                            "players": [book.canonical(p, where, "players") for p in players],
                            "winner": None
                            if winner is None
                            else book.canonical(str(winner), where, "winner"),
                            "state": game.get("state"),
                            "metadata": extra or None,
                            "created_at": to_timestamp(game.get("created_at"), "created_at"),
                            "updated_at": to_timestamp(game.get("updated_at"), "updated_at"),
                        },
                        where,
                    )
    c.out.findings.extend(book.findings())
    return c.out


def route(variant: str, entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
    """Each game of ``vibe:games`` to the bucket of its id."""
    yield from split_json(entry, buckets, lambda game_id, _game, n: bucket_of(game_id, n), dict)


def game_value(r: Record) -> dict[str, Any]:
    """A ``vibe:games`` entry that decodes back to ``r``."""
    return {
        **(r.get("metadata") or {}),
        "id": r["id"],
        "type": r["game_type"],
        "players": r["players"],
        "state": r["state"],
        **({} if r["winner"] is None else {"winner": r["winner"]}),
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
    }


def kv_put(r: Record, _companions: Sequence[Record] = ()) -> Iterator[Cmd]:
    yield ("OBJ-SET", "vibe:games", r["id"], dumps(game_value(r)))


def kv_delete(r: Record) -> Iterator[Cmd]:
    yield ("OBJ-SET", "vibe:games", r["id"], None)


MAPPING = Mapping(
    type_id="games",
    table="games",
    columns=(
        Column("id", "text", key=True),
        Column("game_type", "text"),
        Column("players", "text[]"),
        Column("winner", "text", handle=True),
        Column("state", "json"),
        Column("metadata", "json"),
        Column("created_at", "ts"),
        Column("updated_at", "ts"),
    ),
    patterns=(KeyPattern("vibe:games", "string", "registry"),),
    decoder=decode,
    router=route,
    recency_column="created_at",
    summary="games from the vibe:games JSON object",
    kv_put=kv_put,
    kv_delete=kv_delete,
    reads=(
        ReadPath(
            "games_by_player",
            "/api/games",
            keys_of("vibe:games"),
            lambda r, p: p["handle"] in (r["players"] or []),
            order=(("created_at", True),),
            rename=(("handle", "player"),),
            weight=3,
        ),
    ),
    writes=(WriteOp("game_record", "POST", "/api/games", "phasegate.dualwrite.ops:game_record"),),
)
