"""How the /vibe app writes each shape, as pure functions (docs/data-model.md).

Used by the seed generator and by the Hypothesis strategies in ``fixtures/``,
so both produce exactly the same layouts. Hash values follow the app's rule:
strings raw, everything else as JSON text (``null`` for a missing value).

>>> hash_value("x"), hash_value(None), hash_value(5), hash_value(True)
(b'x', b'null', b'5', b'true')
>>> iso(1767801301123)
'2026-01-07T15:55:01.123Z'
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from phasegate.mappings.invites import INVITE_ALPHABET
from phasegate.mappings.messages_kv import thread_key
from phasegate.values import base36

__all__ = ["INVITE_ALPHABET", "base36", "thread_key"]  # the app's encodings, re-used here


def dumps(value: object) -> bytes:
    """JSON as the app writes it (compact, Unicode kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def hash_value(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return dumps(value)


def iso(ms: int) -> str:
    """Epoch ms as the app's ISO-8601 text (JavaScript ``toISOString``)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def message_scheme1(m: dict[str, Any], iso_dates: bool) -> dict[str, Any]:
    """An element of the ``vibe:messages`` array."""
    obj = {"id": m["id"], "from": m["from"], "to": m["to"], "text": m["text"]}
    if m.get("payload") is not None:
        obj["payload"] = m["payload"]
    obj["createdAt"] = iso(m["ms"]) if iso_dates else m["ms"]
    obj["read"] = m["read"]
    if m.get("read_ms") is not None:
        obj["readAt"] = iso(m["read_ms"])
    return obj


def message_scheme2(m: dict[str, Any], iso_dates: bool) -> dict[str, Any]:
    """A ``msg:{id}`` value; welcome DMs carry only the short form."""
    created: object = iso(m["ms"]) if iso_dates else m["ms"]
    if m.get("system"):
        return {
            "id": m["id"],
            "from": m["from"],
            "to": m["to"],
            "text": m["text"],
            "createdAt": created,
            "read": m["read"],
            "system": True,
        }
    obj = {
        "id": m["id"],
        "from": m["from"],
        "to": m["to"],
        "text": m["text"],
        "body": m["text"],
        "payload": m.get("payload"),
        "v": 2,
        "signature": m.get("signature"),
        "signatureVerified": m.get("signature") is not None,
        "createdAt": created,
        "read": m["read"],
        "consent": m.get("consent", "accepted"),
    }
    if m.get("read_ms") is not None:
        obj["readAt"] = iso(m["read_ms"])
    return obj


def message_scheme3(m: dict[str, Any]) -> dict[str, Any]:
    """An element of ``messages:{to}`` (and of ``thread:{a}:{b}``)."""
    obj = {
        "id": m["id"],
        "from": m["from"],
        "to": m["to"],
        "body": m["text"],
        "type": m.get("type", "dm"),
        "timestamp": m["ms"],
        "read_at": None,
        "_signature": m.get("signature"),
    }
    if m.get("payload") is not None:
        obj["payload"] = m["payload"]
    return obj


def streak_hash(s: dict[str, Any]) -> dict[str, bytes]:
    return {
        "current": hash_value(str(s["current"])),
        "longest": hash_value(str(s["longest"])),
        "totalDays": hash_value(str(s["total"])),
        "lastActive": hash_value(s["last"]),
    }


def streak_json(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "current": s["current"],
        "longest": s["longest"],
        "lastActive": s["last"],
        "activeDays": s["days"],
        "badges": s["badges"],
    }


def invite_code(alphabet_picks: str, inviter: str) -> str:
    """>>> invite_code("AB2C", "@seth")
    'VIBE-AB2C-SETH'
    """
    letters = "".join(ch for ch in inviter if ch.isalpha())[:4].upper()
    return f"VIBE-{alphabet_picks}-{letters or 'VIBE'}"
