"""``python -m offload``: the ``offload`` command."""

import sys

from offload.workflow.cli import main

sys.exit(main())
