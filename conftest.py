"""Thin: the phasegate pytest plugin and the shared fixtures do the work."""

pytest_plugins = [
    "phasegate.plugin",
    "fixtures.stores",
    "fixtures.migration",
    "fixtures.plans",
    "fixtures.load",
]
