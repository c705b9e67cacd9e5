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

import functools
import os
import sys

PY_RUNNER = "py_runner.py"
RB_RUNNER = "rb_runner.rb"
INPUT_FILE = "input.json"
OUTPUT_FILE = "output.json"

#: The runtime files of each operator, by their paths relative to the io directory (``/``-separated).
OPERATOR_FILES = {
    "py>": (PY_RUNNER, "offload_runner.py", "offload_env.py", "digdag/__init__.py"),
    "rb>": (RB_RUNNER, "offload_env.rb"),
}
#: Every runtime file.
FILE_NAMES = tuple(name for names in OPERATOR_FILES.values() for name in names)
#: The Python modules of the runtime (``py_runner.py`` is run as a script: never from bytecode).
MODULES = ("offload_runner.py", "offload_env.py", "digdag/__init__.py")

_HERE = os.path.dirname(os.path.abspath(__file__))


def files() -> dict[str, str]:
    """Each runtime file's name relative to the io directory, mapped to its source path."""
    return {name: os.path.join(_HERE, *name.split("/")) for name in FILE_NAMES}


def install(io_dir: str, operator: str | None = None) -> None:
    """Write the runtime files of ``operator`` (``py>``, ``rb>``; ``None``: every file) into
    ``io_dir``, created if missing.

    With the Python modules goes their bytecode for this interpreter, as checked hash-based
    ``.pyc`` files (PEP 552): a task run by the same Python version loads them instead of
    compiling the runtime; any other interpreter does not look at them (another cache tag)
    or finds them not matching and compiles the source, as without them.
    """
    names = FILE_NAMES if operator is None else OPERATOR_FILES[operator]
    contents = _contents()
    made: set[str] = set()
    for name in names:
        _write(io_dir, name, contents[name], made)
        pyc = _bytecode().get(name)
        if pyc is not None:
            _write(io_dir, pyc[0], pyc[1], made)


def _write(io_dir: str, name: str, data: bytes, made: set[str]) -> None:
    head, _, _ = name.rpartition("/")
    if head not in made:
        os.makedirs(os.path.join(io_dir, head) if head else io_dir, exist_ok=True)
        made.add(head)
    with open(os.path.join(io_dir, name), "wb") as f:
        f.write(data)


@functools.lru_cache(maxsize=1)
def _contents() -> dict[str, bytes]:
    """Every runtime file's bytes, read once per process."""
    out = {}
    for name, source in files().items():
        with open(source, "rb") as f:
            out[name] = f.read()
    return out


@functools.lru_cache(maxsize=1)
def _bytecode() -> dict[str, tuple[str, bytes]]:
    """For each runtime module, the path of its ``.pyc`` for this interpreter and its bytes."""
    import importlib.util
    import marshal

    tag = getattr(sys.implementation, "cache_tag", None)
    if tag is None:  # this interpreter writes no bytecode files
        return {}
    out = {}
    for name in MODULES:
        source = _contents()[name]
        code = compile(source, os.path.join(_HERE, *name.split("/")), "exec", dont_inherit=True, optimize=0)
        head, _, tail = name.rpartition("/")
        pyc = f"{head + '/' if head else ''}__pycache__/{tail.removesuffix('.py')}.{tag}.pyc"
        flags = (0b11).to_bytes(4, "little")  # hash-based, checked against the source
        out[name] = (pyc, importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source) + marshal.dumps(code))
    return out
