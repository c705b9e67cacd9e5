"""The code a ``py>`` or ``rb>`` task runs where the task runs.

These files are copied into the task's io directory and run by the interpreter of the
task's image, where offload is not installed: they import only the standard library of
Python (3.8+) or Ruby (2.7+). Their contract:

``python3 IO/py_runner.py IO CALLABLE`` and ``ruby IO/rb_runner.rb IO CALLABLE REQUIRE``,
run with the task's working directory as cwd (IO relative to it or absolute), read
``IO/input.json`` (``{"params": {...}, "task_name": "..."}``) and write ``IO/output.json``
(``store_params``, ``export_params``, ``subtask_config`` and, when the task failed,
``error``: ``{"class", "message", "backtrace"}`` with exit status 1).
"""

from __future__ import annotations

import os
import shutil

PY_RUNNER = "py_runner.py"
RB_RUNNER = "rb_runner.rb"
INPUT_FILE = "input.json"
OUTPUT_FILE = "output.json"

#: Every runtime file, by its path relative to the io directory (``/``-separated).
FILE_NAMES = (PY_RUNNER, "offload_env.py", "digdag/__init__.py", RB_RUNNER, "offload_env.rb")

_HERE = os.path.dirname(os.path.abspath(__file__))


def files() -> dict[str, str]:
    """Each runtime file's name relative to the io directory, mapped to its source path."""
    return {name: os.path.join(_HERE, *name.split("/")) for name in FILE_NAMES}


def install(io_dir: str) -> None:
    """Copy every runtime file into ``io_dir`` (created if missing)."""
    for name, source in files().items():
        target = os.path.join(io_dir, *name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
