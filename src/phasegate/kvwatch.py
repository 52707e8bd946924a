"""Every write a Redis DB takes, as the server reports it: keyspace notifications.

:class:`KvWatch` turns on ``notify-keyspace-events`` (``KA``: every event class,
published on ``__keyspace@<db>__:<key>``) on a Redis of the sandbox, subscribes,
and hands back the events in the order the server ran the commands. A
:meth:`KvWatch.mark` publishes a marker on a channel of its own and reads up to
it, so everything the server ran before the mark is in hand: events cost
nothing per key already in the store, where reading every key's digest before
and after costs a full scan each time (at 6mo, 107 s of the Phase D gate's 145).

Expiry and eviction are the server's own doing, not a client's write, and are
left out. The setting it found is put back on close. Only for stores phasegate
may configure: it runs ``CONFIG SET`` and ``CLIENT LIST``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from types import TracebackType

import redis

from phasegate.errors import ServerError
from phasegate.stores import kv_errors, kv_where

NOT_WRITES = frozenset({"expired", "evicted"})
FLAGS = "KA"  # keyspace channel, every event class
NAME = "phasegate-kvwatch-"
MARK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class KeyEvent:
    """A command the server ran on a key: ``hset``, ``del``, ``expire``..."""

    key: bytes
    event: str


class KvWatch:
    """The write events of one Redis DB between marks.

    ``notify-keyspace-events`` is the server's, not the DB's, and two watches may
    overlap on one server (xdist workers on a shared sandbox). Each watch's
    subscriber is named ``phasegate-kvwatch-<the setting found before any watch>-<id>``:
    a watch that starts beside others takes the original from their names, the
    last one out puts it back, and every mark checks the setting still holds
    (an error if another client turned it off: events may have been lost).
    """

    def __init__(self, kv: redis.Redis) -> None:
        self.kv = kv
        self.db = int(kv.connection_pool.connection_kwargs.get("db", 0) or 0)
        self.prefix = f"__keyspace@{self.db}__:".encode()
        self.marker = f"phasegate:kvwatch:{uuid.uuid4().hex}".encode()
        current = self._setting()
        others = list(self._watchers().values())
        self.original = others[0] if others else current
        self.name = f"{NAME}{self.original.encode().hex() or 'none'}-{uuid.uuid4().hex[:8]}"
        pool = kv.connection_pool
        self.named = redis.Redis(
            connection_pool=redis.ConnectionPool(
                connection_class=pool.connection_class,
                **{
                    **pool.connection_kwargs,
                    "client_name": self.name,
                },
            )
        )
        self.pubsub = self.named.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.psubscribe(self.prefix + b"*")
        self.pubsub.subscribe(self.marker)
        with kv_errors(kv, "CONFIG SET notify-keyspace-events"):
            kv.config_set("notify-keyspace-events", "".join(sorted(set(current) | set(FLAGS))))
        self.mark()  # the subscriptions are live once the first mark comes back

    def _setting(self) -> str:
        with kv_errors(self.kv, "CONFIG GET notify-keyspace-events"):
            found = self.kv.config_get("notify-keyspace-events")
        return str(next(iter(found.values()), "") or "")

    def _watchers(self) -> dict[str, str]:
        """Each watch running on this server: its name, and the original setting."""
        with kv_errors(self.kv, "CLIENT LIST"):
            clients = self.kv.client_list()
        out = {}
        for c in clients:
            name = str(c.get("name", ""))
            if name.startswith(NAME):
                original = name[len(NAME) :].split("-", maxsplit=1)[0]
                out[name] = "" if original == "none" else bytes.fromhex(original).decode()
        return out

    def mark(self) -> list[KeyEvent]:
        """Every write event since the last mark, in the order the server ran them."""
        token = uuid.uuid4().hex.encode()
        self.kv.publish(self.marker, token)
        events: list[KeyEvent] = []
        deadline = time.monotonic() + MARK_TIMEOUT_S
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.5)
            if message is None:
                continue
            channel = bytes(message["channel"])
            if channel == self.marker:
                if bytes(message["data"]) == token:
                    if not set(FLAGS) <= set(self._setting()):
                        raise ServerError(
                            f"Redis at {kv_where(self.kv)}: notify-keyspace-events was "
                            "changed by another client while phasegate watched its writes; "
                            "writes may have gone unseen"
                        )
                    return events
                continue
            if message["type"] == "pmessage" and channel.startswith(self.prefix):
                event = bytes(message["data"]).decode(errors="replace")
                if event not in NOT_WRITES:
                    events.append(KeyEvent(channel[len(self.prefix) :], event))
        raise ServerError(
            f"Redis at {kv_where(self.kv)}: a keyspace-notification marker did not come "
            f"back within {MARK_TIMEOUT_S:.0f} s"
        )

    def close(self) -> None:
        """Unsubscribe; the last watch on the server puts the original setting back."""
        self.pubsub.close()
        self.named.close()
        # the server drops a closed connection when it next reads its socket: wait
        # for that, so the next watch to close does not count this one as running
        deadline = time.monotonic() + MARK_TIMEOUT_S
        while self.name in (running := self._watchers()) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not set(running) - {self.name}:
            with kv_errors(self.kv, "CONFIG SET notify-keyspace-events"):
                self.kv.config_set("notify-keyspace-events", self.original)

    def __enter__(self) -> KvWatch:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
