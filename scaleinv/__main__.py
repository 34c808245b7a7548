"""``python -m scaleinv``: the same as the ``scaleinv`` console script."""

import sys

from scaleinv.cli.main import main

sys.exit(main())
