"""phasegate: the gatekeeper for moving a Redis-backed app to Postgres, phase by phase."""

__version__ = "0.1.0"
