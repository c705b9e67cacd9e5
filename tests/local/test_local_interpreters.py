"""A version manager's shim (``python3`` in a ``shims`` directory) is asked once which
interpreter it runs; every ``py>`` task then starts that interpreter directly.

The shim here is a shell script that logs each call and runs the Python running these tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import offload
from offload_local.interpreters import Interpreters

SHIM = """#!/bin/sh
echo "$@" >> "{log}"
exec "{python}" "$@"
"""


def make_shim(root: Path, name: str = "python3", directory: str = "shims", code: int | None = None) -> Path:
    """A shim ``root/directory/name`` that logs its calls to ``root/calls.log``."""
    folder = root / directory
    folder.mkdir(exist_ok=True)
    shim = folder / name
    body = SHIM.format(log=root / "calls.log", python=sys.executable)
    if code is not None:
        body = f'#!/bin/sh\necho "$@" >> "{root / "calls.log"}"\nexit {code}\n'
    shim.write_text(body)
    shim.chmod(0o755)
    return shim


def calls(root: Path) -> int:
    log = root / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def env_with(folder: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", **extra}


def test_a_shim_is_asked_once_and_its_interpreter_runs_the_tasks(tmp_path: Path) -> None:
    make_shim(tmp_path)
    env = env_with(tmp_path / "shims")
    interpreters = Interpreters()
    first = interpreters.resolve(["python3", "IO/py_runner.py", "IO", "mod.f"], env, str(tmp_path))
    again = interpreters.resolve(["python3", "IO/py_runner.py", "IO", "mod.g"], env, str(tmp_path))
    assert first[0] == again[0] != "python3"
    assert os.path.samefile(first[0], sys.executable)
    assert list(first[1:]) == ["IO/py_runner.py", "IO", "mod.f"] and list(again[1:]) == ["IO/py_runner.py", "IO", "mod.g"]
    assert calls(tmp_path) == 1


def test_a_version_manager_setting_or_another_directory_asks_again(tmp_path: Path) -> None:
    make_shim(tmp_path)
    interpreters = Interpreters()
    interpreters.resolve(["python3"], env_with(tmp_path / "shims"), str(tmp_path))
    interpreters.resolve(["python3"], env_with(tmp_path / "shims", PYENV_VERSION="3.11.7"), str(tmp_path))
    interpreters.resolve(["python3"], env_with(tmp_path / "shims"), str(tmp_path / "shims"))
    interpreters.resolve(["python3"], env_with(tmp_path / "shims", UNRELATED="x"), str(tmp_path))
    assert calls(tmp_path) == 3


@pytest.mark.parametrize(
    ("argv0", "directory"),
    [("python3", "bin"), ("bash", "shims"), ("/usr/bin/env", "shims")],
    ids=["not-in-a-shims-directory", "not-an-interpreter", "a-path"],
)
def test_anything_else_runs_as_given(tmp_path: Path, argv0: str, directory: str) -> None:
    make_shim(tmp_path, name=os.path.basename(argv0), directory=directory)
    assert Interpreters().resolve([argv0, "x"], env_with(tmp_path / directory), str(tmp_path)) == [argv0, "x"]
    assert calls(tmp_path) == 0


def test_a_shim_that_fails_runs_as_given_and_is_not_asked_again(tmp_path: Path) -> None:
    make_shim(tmp_path, code=3)
    interpreters = Interpreters()
    env = env_with(tmp_path / "shims")
    assert interpreters.resolve(["python3", "x"], env, str(tmp_path)) == ["python3", "x"]
    assert interpreters.resolve(["python3", "y"], env, str(tmp_path)) == ["python3", "y"]
    assert calls(tmp_path) == 1


STEP = "import sys, offload_env\n\ndef step(n):\n    offload_env.store(n=int(n) + 1, python=sys.executable)\n"


def test_py_tasks_of_a_run_ask_the_shim_once(tmp_path: Path) -> None:
    """Through ``offload run``: three ``py>`` tasks, one question to the shim, the value passed on."""
    root = tmp_path / "tools"
    root.mkdir()
    make_shim(root)
    project = tmp_path / "project"
    project.mkdir()
    (project / "steps.py").write_text(STEP)
    flow = "_export:\n  n: 0\n" + "".join(f"+s{i}:\n  py>: steps.step\n" for i in range(3)) + "+show:\n  sh>: echo n=${n}\n"
    (project / "flow.dig").write_text(flow)
    env = env_with(root / "shims", OFFLOAD_DISABLE_PLUGINS="docker,ecs,kubernetes,s3,gcs")
    env = {k: v for k, v in env.items() if k not in ("OFFLOAD_CONFIG", "PYTHONPATH")}
    done = subprocess.run([sys.executable, "-m", "offload.workflow.cli", "run", "flow.dig"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "n=3" in done.stdout
    assert calls(root) == 1


def test_the_embedding_api_resolves_the_shim_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The request keeps ``python3``: only the local backend, which runs it here, resolves it."""
    make_shim(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'shims'}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "where.py").write_text("import sys\nprint(sys.executable)\n")
    request = offload.TaskRequest(task_id="t", argv=("python3", "where.py"), project_dir=str(tmp_path), io_dir=".offload/io/t")
    lines: list[str] = []
    with offload.Executor({"command_executor": {"type": "local"}}) as executor:
        result = executor.run(request, on_log=lines.append, backend="local")
    assert result.ok, lines
    assert os.path.samefile(lines[-1], sys.executable)
    assert calls(tmp_path) == 1  # the probe; the task itself did not go through the shim
