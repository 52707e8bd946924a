"""The examples in the library's docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import phasegate

# Importing Locust monkey-patches the whole process with gevent; the module that
# does (for the locustfiles) is imported in Locust's own process only.
IN_LOCUST_ONLY = {"phasegate.load.hooks"}
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(phasegate.__path__, prefix="phasegate.")
    if info.name not in IN_LOCUST_ONLY and not info.name.endswith(".__main__")  # runs the CLI
)


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests_pass(name: str) -> None:
    """Every doctest in ``name`` passes."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
