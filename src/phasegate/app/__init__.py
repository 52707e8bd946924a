"""The reference service: the /vibe endpoints the load touches, over both stores.

Per data type a read source (``kv`` or ``pg``) and a write mode (``kv``, ``dual``,
``pg``) decide where an endpoint reads and writes: the spec's
``USE_POSTGRES_<TYPE>`` switches, made real, and what a rollback flips. Reads
from Postgres execute the query catalog; reads from KV decode the keys the app
would read with the same mappings, so both answer the same JSON.
"""
