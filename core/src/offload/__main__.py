"""``python -m offload``: the ``offload`` command."""

import sys

from offload.cli import main

sys.exit(main())
