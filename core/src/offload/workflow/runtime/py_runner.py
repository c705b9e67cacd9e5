"""Runs a ``py>`` task: ``python3 IO/py_runner.py IO CALLABLE``, with the task's working
directory as cwd; what it does is in ``offload_runner`` beside this file, which Python
loads from the bytecode the driver may have written for it (a script run by its path is
compiled every time). Standard library only, Python 3.8+: this runs in the task's image.
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
