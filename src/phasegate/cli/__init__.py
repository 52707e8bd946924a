"""The ``phasegate`` command: one module per command group, one place that catches.

:mod:`~phasegate.cli.main` builds the parser, resolves the settings and maps
every error to the fixed exit codes (0 pass, 1 gate failed, 2 usage or
environment error, 3 inconclusive); the command groups (:mod:`.shapes`,
:mod:`.load`, :mod:`.reconcile`, :mod:`.doctor`, and the store commands in
:mod:`.main`) only add their parsers and return a code.
"""

from phasegate.cli.main import main

__all__ = ["main"]
