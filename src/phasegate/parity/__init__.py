"""Parity: both stores reduced to canonical records through the mappings, compared."""
