"""The Redis server's own account of the writes it takes (keyspace notifications).

``notify-keyspace-events`` is the whole server's, and these tests set it to see
what a watch does about that, so they run on a Valkey of their own: on a shared
sandbox they would change what another worker's watch sees.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from phasegate.errors import ServerError
from phasegate.kvwatch import KvWatch
from phasegate.servers.embedded import EmbeddedValkey
from phasegate.stores import connect_kv

pytestmark = pytest.mark.own_servers


@pytest.fixture(scope="module")
def own_kv() -> Iterator[redis.Redis]:
    server = EmbeddedValkey().start()
    client = connect_kv(server.url)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def setting(kv: redis.Redis) -> str:
    return str(kv.config_get("notify-keyspace-events")["notify-keyspace-events"])


def test_every_write_is_seen_in_order_and_expiry_is_not_a_write(
    own_kv: redis.Redis,
) -> None:
    kv = own_kv
    kv.set("before", "1")
    found = setting(kv)
    with KvWatch(kv) as watch:
        assert watch.mark() == []  # what came before the watch is not in it
        kv.set("a", "1")
        kv.hset("h", "f", "v")
        kv.delete("before")
        kv.set("short", "x", px=50)
        time.sleep(0.2)
        kv.get("short")  # an expired key is reaped when it is touched
        seen = [(e.key, e.event) for e in watch.mark()]
        # SET PX is two events, both the client's; the expiry itself is not one
        assert seen == [
            (b"a", "set"),
            (b"h", "hset"),
            (b"before", "del"),
            (b"short", "set"),
            (b"short", "expire"),
        ]
        kv.get("a")  # a read is not an event
        assert watch.mark() == []
    assert setting(kv) == found


def test_overlapping_watches_keep_the_setting_until_the_last_one_closes(
    own_kv: redis.Redis,
) -> None:
    """Two watches on one server (xdist): the first one out must not blind the other."""
    kv = own_kv
    found = setting(kv)
    first = KvWatch(kv)
    second = KvWatch(kv)
    first.close()
    kv.set("k", "v")
    assert [e.key for e in second.mark()] == [b"k"]
    second.close()
    assert setting(kv) == found


def test_a_setting_turned_off_mid_watch_is_an_error_not_a_pass(
    own_kv: redis.Redis,
) -> None:
    kv = own_kv
    found = setting(kv)
    with KvWatch(kv) as watch:
        kv.config_set("notify-keyspace-events", "")
        kv.set("unseen", "1")
        with pytest.raises(ServerError, match="changed by another client"):
            watch.mark()
    assert setting(kv) == found
