"""Asking a version manager's shim once which interpreter it runs, not once per task.

``py>`` runs ``python3`` (``rb>``: ``ruby``) from ``PATH``. Where that is a shim of pyenv,
rbenv, asdf or mise (a script in a directory named ``shims``), every call costs the shim's
own start, about 150 ms, before the interpreter starts. So the local backend asks the shim
once per driver process, ``PATH``, working directory and version manager setting
(``PYENV_VERSION``...) which interpreter it runs (Python's ``sys.executable``, Ruby's
``RbConfig.ruby``) and starts that interpreter directly for every task with the same
settings: the interpreter the shim would have chosen, without the shim's cost.

Only a bare program name (``python3``, ``python3.12``, ``ruby``) found in a ``shims``
directory is resolved; a path (``/usr/bin/python3``, ``./venv/bin/python``) or any other
program runs as given. A shim whose answer is not an executable file is run as given.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence

#: Programs whose shim is resolved, with the arguments that make them print their own path.
PROBES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"python(\d+(\.\d+)*)?"), ("-c", "import sys; sys.stdout.write(sys.executable)")),
    (re.compile(r"ruby(\d+(\.\d+)*)?"), ("-e", "print RbConfig.ruby")),
)
#: The name of the directory that version managers keep their shims in.
SHIM_DIR = "shims"
#: Environment variables that change a shim's choice (besides ``PATH`` and the directory).
SETTINGS = ("PYENV", "RBENV", "ASDF", "MISE")
#: Seconds a shim gets to answer.
PROBE_TIMEOUT = 60.0

_Key = tuple[str, str, str, tuple[tuple[str, str], ...]]


class Interpreters:
    """Resolved shims of this process, by program, ``PATH``, directory and settings."""

    def __init__(self) -> None:
        self._found: dict[_Key, str | None] = {}

    def resolve(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> Sequence[str]:
        """``argv`` with its program replaced by the interpreter its shim runs, when it is one."""
        if not argv or "/" in argv[0]:
            return argv
        program = argv[0]
        probe = next((args for pattern, args in PROBES if pattern.fullmatch(program)), None)
        if probe is None:
            return argv
        path = env.get("PATH", os.defpath)
        settings = tuple(sorted((k, v) for k, v in env.items() if k.startswith(SETTINGS)))
        key = (program, path, cwd, settings)
        if key not in self._found:
            self._found[key] = _ask(program, probe, path, env, cwd)
        found = self._found[key]
        return argv if found is None else [found, *argv[1:]]


def _ask(program: str, probe: tuple[str, ...], path: str, env: Mapping[str, str], cwd: str) -> str | None:
    shim = shutil.which(program, path=path)
    if shim is None or os.path.basename(os.path.dirname(shim)) != SHIM_DIR:
        return None
    import subprocess  # only for a shim: a run without one does not pay for the import

    try:
        done = subprocess.run([shim, *probe], env=dict(env), cwd=cwd, capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    answer = os.fsdecode(done.stdout.strip())
    if done.returncode != 0 or not os.path.isabs(answer) or not os.path.isfile(answer) or not os.access(answer, os.X_OK):
        return None
    return answer
