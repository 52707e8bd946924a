"""Secrets never reach a log, a report or a traceback.

Three places a secret can hide in what phasegate prints: a URL's userinfo
(``redis://ro:pw@host``), a URL's query parameters (``?password=pw``, both
redis-py and libpq accept them) and a libpq ``key=value`` string
(``password=pw``). :func:`redact` hides all three in any text.
:class:`SecretUrl` is a ``str`` whose ``repr`` is redacted, so a URL passed as
an argument shows masked in pytest's tracebacks. :func:`mask_fields` masks the
values of fields named like secrets in data excerpts (a user hash's
``recoveryKey``).

>>> redact("redis://ro:Secr3t@kv:6379/0")
'redis://ro:***@kv:6379/0'
>>> redact("postgresql://db/vibe?sslmode=require&password=pw&passfile=/x")
'postgresql://db/vibe?sslmode=require&password=***&passfile=***'
>>> redact("host=db dbname=vibe password='a b' user=app")
'host=db dbname=vibe password=*** user=app'
>>> repr(SecretUrl("redis://:pw@kv/0"))
"'redis://:***@kv/0'"
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# Query parameters and key=value words that carry secrets (libpq and redis-py names).
SECRET_PARAMS = ("password", "passfile", "sslpassword", "sslkey", "token", "auth", "secret")
_USERINFO = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@", re.I
)
_PARAM = re.compile(
    r"(?P<name>\b(?:" + "|".join(SECRET_PARAMS) + r"))=(?P<value>'(?:[^'\\]|\\.)*'|[^&\s'\"]*)",
    re.I,
)
# Field names whose values are secrets wherever they appear in data.
_SECRET_FIELD = re.compile(
    r"pass(word|wd|phrase)?|secret|token|recovery_?key|private_?key|api_?key|credential|seed_?phrase",
    re.I,
)
_JSON_SECRET = re.compile(
    r"(?P<head>\"(?P<name>[^\"]*)\"\s*:\s*)(?P<value>\"(?:[^\"\\]|\\.)*\"|[^,}\s]+)"
)
MASK = "***"


def redact(text: str) -> str:
    """``text`` with every password, secret query parameter and key=value secret hidden."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _PARAM.sub(lambda m: f"{m['name']}={MASK}", text)


class SecretUrl(str):
    """A URL that shows redacted wherever it is ``repr``-ed (tracebacks, dataclasses)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact(str(self)))


def is_secret_field(name: object) -> bool:
    """Whether a field of that name holds a secret (``recoveryKey``, ``api_key``...).

    >>> is_secret_field("recoveryKey"), is_secret_field("publicKey")
    (True, False)
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return isinstance(name, str) and bool(_SECRET_FIELD.search(name))


def mask_fields(value: Any) -> Any:
    """A copy of a raw value with the values of secret-named fields masked.

    Dicts (hash values, decoded JSON) are masked by key; text and bytes that
    hold JSON are masked by their ``"name": value`` pairs.

    >>> mask_fields({b"username": b"al", b"recoveryKey": b"k1"})
    {b'username': b'al', b'recoveryKey': '***'}
    >>> mask_fields(b'{"handle":"al","api_key":"x"}')
    b'{"handle":"al","api_key":"***"}'
    """
    if isinstance(value, dict):
        return {k: MASK if is_secret_field(k) else mask_fields(v) for k, v in value.items()}
    if isinstance(value, bytes):
        if not _JSON_SECRET.search(value.decode("utf-8", "replace")):
            return value
        text = value.decode("utf-8", "surrogateescape")
        return _mask_json_text(text).encode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return _mask_json_text(value)
    return value


def _mask_json_text(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        return f'{m["head"]}"{MASK}"' if is_secret_field(m["name"]) else m[0]

    return _JSON_SECRET.sub(one, text)


def shown_secret(value: object) -> str:
    """A secret value as people may see it: its length and a short digest, so two
    values can be told apart without either being shown.

    >>> shown_secret("hunter2")
    '<secret, 7 chars, sha256 f52fbd32>'
    >>> shown_secret(None)
    'None'
    """
    if value is None:
        return "None"
    text = str(value)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"<secret, {len(text)} chars, sha256 {digest}>"
