"""``python -m phasegate.cli``: the same as the ``phasegate`` command."""

import sys

from phasegate.cli.main import main

sys.exit(main())
