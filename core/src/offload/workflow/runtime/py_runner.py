"""Runs a ``py>`` task: ``python3 IO/py_runner.py IO CALLABLE``, with the task's working directory as cwd.

Reads ``IO/input.json`` (``{"params": {...}, "task_name": "+flow+task"}``), imports
``pkg.mod`` and calls ``func`` (``pkg.mod.func``), or makes a ``Class`` and calls its
``method`` (``pkg.mod.Class.method``; ``pkg.mod.Class`` alone calls ``run``), passing params by
argument name as Digdag does. Writes ``IO/output.json`` (``store_params``, ``export_params``,
``subtask_config``, and ``error`` when the task failed, then exit status 1). The return value
is ignored, as in Digdag.

The work is done by ``offload_runner`` beside this file: Python loads a module from the
bytecode the driver may have written for it, never a script run by its path. Standard
library only, Python 3.8+: this runs in the task's image, where offload is not installed.
"""

import sys

sys.dont_write_bytecode = True  # into IO or the project: they may be mounted, or uploaded back
TYPE_CHECKING = False
if TYPE_CHECKING:
    from offload.workflow.runtime.offload_runner import main
else:
    from offload_runner import main  # beside this file: the script's directory is on sys.path

if __name__ == "__main__":
    sys.exit(main(sys.argv))
