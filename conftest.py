"""Thin: the phasegate pytest plugin and the shared fixtures do the work."""

pytest_plugins = [
    "phasegate.plugin",
    "fixtures.stores",
    "fixtures.migration",
    "fixtures.phase_d",
    "fixtures.plans",
    "fixtures.load",
]
