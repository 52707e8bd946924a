"""Store URLs checked before anything connects.

A URL that libpq or redis-py would quietly complete (a Postgres URL with no
database, which libpq fills with the user's name; a Redis DB that is not a
number, which redis-py reads as DB 0) points a command at a store the user did
not name. Each check raises ``ValueError`` with the fix; the settings layer
turns that into a usage error (exit 2) that names the setting and hides secrets.

>>> check_kv_url("redis://127.0.0.1:6379/3")
'redis://127.0.0.1:6379/3'
>>> check_kv_url("redis://h:6379/notanumber")
Traceback (most recent call last):
ValueError: the Redis DB must be a number (redis://HOST:PORT/DB), got '/notanumber'
>>> check_pg_url("postgres://")
Traceback (most recent call last):
ValueError: names no host: give postgresql://USER@HOST:PORT/DATABASE
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qs, urlsplit

KV_SCHEMES = ("redis", "rediss", "unix")
PG_SCHEMES = ("postgresql", "postgres")
HTTP_SCHEMES = ("http", "https")


def _split(
    raw: str, schemes: tuple[str, ...], example: str
) -> tuple[str, SplitResult, dict[str, list[str]]]:
    value = raw.strip()
    if "://" not in value:
        if "=" in value:
            raise ValueError(
                f"a key=value connection string is not accepted: give a URL, {example}"
            )
        raise ValueError(f"expected a URL such as {example}")
    parts = urlsplit(value)
    if parts.scheme.lower() not in schemes:
        raise ValueError(
            f"scheme {parts.scheme + '://'!r} is not one of {', '.join(s + '://' for s in schemes)}"
            f" (e.g. {example})"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"the port is not a number (e.g. {example})") from None
    return value, parts, parse_qs(parts.query)


def check_kv_url(raw: str) -> str:
    """A Redis URL with a host (or socket path) and a numeric DB; returned stripped."""
    example = "redis://HOST:6379/0 (rediss:// for TLS)"
    value, parts, query = _split(raw, KV_SCHEMES, example)
    scheme, path = parts.scheme.lower(), parts.path
    if scheme == "unix":
        if not path:
            raise ValueError("a unix:// Redis URL needs the socket path: unix:///path/redis.sock")
        db = query.get("db", ["0"])[0]
    else:
        if not parts.hostname:
            raise ValueError(f"names no host: give {example}")
        db = path.lstrip("/") or query.get("db", ["0"])[0]
        if "/" in db:
            raise ValueError(f"the Redis DB must be a number (redis://HOST:PORT/DB), got {path!r}")
    if not db.isdigit():
        shown = path if path.strip("/") else f"db={db}"
        raise ValueError(f"the Redis DB must be a number (redis://HOST:PORT/DB), got {shown!r}")
    return value


def check_pg_url(raw: str) -> str:
    """A Postgres URL that names its host (or socket folder) and database."""
    example = "postgresql://USER@HOST:PORT/DATABASE"
    value, parts, query = _split(raw, PG_SCHEMES, example)
    host = parts.hostname or query.get("host", [""])[0]
    if not host:
        raise ValueError(f"names no host: give {example}")
    database = parts.path.strip("/") or query.get("dbname", [""])[0]
    if not database:
        raise ValueError(
            "names no database, so libpq would pick one by default (the user's name): "
            f"give {example}"
        )
    return value


def check_http_url(raw: str) -> str:
    """An HTTP(S) base URL with a host."""
    example = "https://app.example"
    value, parts, _query = _split(raw, HTTP_SCHEMES, example)
    if not parts.hostname:
        raise ValueError(f"names no host: give {example}")
    return value
