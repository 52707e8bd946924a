"""Real servers on demand: embedded binaries, testcontainers, or given URLs."""

from phasegate.servers.embedded import EmbeddedPostgres, EmbeddedValkey
from phasegate.servers.sandbox import Sandbox, open_sandbox, scratch_database, scratch_kv

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedValkey",
    "Sandbox",
    "open_sandbox",
    "scratch_database",
    "scratch_kv",
]
