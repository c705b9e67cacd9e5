"""The ``py>`` runtime: ``py_runner.py`` run by a real interpreter on real task files."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest

from offload.workflow import runtime as _runtime

IO = ".offload-io"


@attrs.frozen
class Run:
    returncode: int
    stdout: str
    stderr: str
    output: dict[str, Any]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


def write(project: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def run_py(
    project: Path,
    name: str,
    params: dict[str, Any] | None = None,
    *,
    io: str = IO,
    python: str = sys.executable,
    input_data: dict[str, Any] | None = None,
    reinstall: bool = True,
) -> Run:
    io_dir = project / io
    if reinstall:
        _runtime.install(str(io_dir))
    data = input_data if input_data is not None else {"params": params or {}, "task_name": "+flow+task"}
    (io_dir / _runtime.INPUT_FILE).write_text(json.dumps(data), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONIOENCODING"] = "utf-8"
    proc = subprocess.run(
        [python, f"{io}/{_runtime.PY_RUNNER}", io, name],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    output_path = io_dir / _runtime.OUTPUT_FILE
    output = json.loads(output_path.read_text(encoding="utf-8")) if output_path.exists() else {}
    return Run(proc.returncode, proc.stdout, proc.stderr, output)


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.stderr
    assert "error" not in run.output, run.output
    return run


def failed(run: Run, kind: str) -> dict[str, Any]:
    assert run.returncode == 1, (run.stdout, run.stderr)
    error: dict[str, Any] = run.output["error"]
    assert error["class"] == kind, error
    assert run.output["store_params"] == {} and run.output["export_params"] == {}
    return error


def test_files_lists_every_runtime_file() -> None:
    files = _runtime.files()
    assert set(files) == {"py_runner.py", "offload_runner.py", "offload_env.py", "digdag/__init__.py", "rb_runner.rb", "offload_env.rb"}
    for path in files.values():
        assert os.path.isabs(path) and os.path.isfile(path)


def test_install_writes_an_operators_files_and_bytecode_for_this_python(tmp_path: Path) -> None:
    _runtime.install(str(tmp_path / "io"), "py>")
    written = sorted(str(p.relative_to(tmp_path / "io")) for p in (tmp_path / "io").rglob("*") if p.is_file())
    tag = sys.implementation.cache_tag
    pycs = [f"__pycache__/offload_env.{tag}.pyc", f"__pycache__/offload_runner.{tag}.pyc", f"digdag/__pycache__/__init__.{tag}.pyc"]
    assert written == sorted([*_runtime.OPERATOR_FILES["py>"], *pycs])
    _runtime.install(str(tmp_path / "rb"), "rb>")
    assert sorted(p.name for p in (tmp_path / "rb").iterdir()) == ["offload_env.rb", "rb_runner.rb"]


def test_the_runner_loads_that_bytecode_and_never_a_stale_one(project: Path) -> None:
    write(project, {"mod.py": "import offload_env\ndef f():\n    offload_env.store(marker=getattr(offload_env, 'MARKER', None))\n"})
    io_dir = project / IO
    _runtime.install(str(io_dir), "py>")
    (io_dir / _runtime.INPUT_FILE).write_text(json.dumps({"params": {}}), encoding="utf-8")
    argv = [sys.executable, "-v", f"{IO}/{_runtime.PY_RUNNER}", IO, "mod.f"]
    verbose = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=60)
    assert verbose.returncode == 0, verbose.stderr
    for module in ("offload_runner", "offload_env"):
        assert f"{IO}/__pycache__/{module}.{sys.implementation.cache_tag}.pyc matches" in verbose.stderr
    with open(io_dir / "offload_env.py", "a", encoding="utf-8") as f:
        f.write("MARKER = 'from the source'\n")  # the bytecode no longer matches: the source wins
    assert ok(run_py(project, "mod.f", reinstall=False)).output["store_params"] == {"marker": "from the source"}
    tag = sys.implementation.cache_tag
    driver_wrote = {f"__pycache__/offload_env.{tag}.pyc", f"__pycache__/offload_runner.{tag}.pyc", f"digdag/__pycache__/__init__.{tag}.pyc"}
    assert {p.relative_to(io_dir).as_posix() for p in project.rglob("*.pyc")} == driver_wrote  # the task wrote none


def test_arguments_by_name_and_extra_params_ignored(project: Path) -> None:
    write(project, {"tasks/__init__.py": "import offload_env\ndef add(a, b):\n    offload_env.store(total=a + b)\n"})
    run = ok(run_py(project, "tasks.add", {"b": 2, "a": 40, "unused": True}))
    assert run.output == {"store_params": {"total": 42}, "export_params": {}, "subtask_config": {}}


def test_defaults_kept_when_param_missing(project: Path) -> None:
    write(project, {"mod.py": "import offload_env\ndef f(a, b=5, *, c='c'):\n    offload_env.store(got=[a, b, c])\n"})
    assert ok(run_py(project, "mod.f", {"a": 1})).output["store_params"] == {"got": [1, 5, "c"]}
    assert ok(run_py(project, "mod.f", {"a": 1, "b": 2, "c": "x"})).output["store_params"] == {"got": [1, 2, "x"]}


def test_var_keyword_receives_all_params(project: Path) -> None:
    write(project, {"mod.py": "import offload_env\ndef f(a, *args, **kw):\n    offload_env.store(a=a, kw=kw, args=list(args))\n"})
    params = {"a": 1, "b": {"c": 2}, "not-an-identifier": 3}
    # every param is passed: the named ones bind to their arguments, **kw gets the others
    assert ok(run_py(project, "mod.f", params)).output["store_params"] == {"a": 1, "kw": {"b": {"c": 2}, "not-an-identifier": 3}, "args": []}


def test_class_method_with_init_arguments(project: Path) -> None:
    write(
        project,
        {
            "pkg/__init__.py": "",
            "pkg/flow.py": """
                import offload_env

                class MyWorkflow:
                    def __init__(self, table, limit=10):
                        self.table, self.limit = table, limit

                    def step(self, day):
                        offload_env.store(result=[self.table, self.limit, day])

                    @staticmethod
                    def static(day):
                        offload_env.store(static=day)

                    @classmethod
                    def klass(cls, day):
                        offload_env.store(klass=[cls.__name__, day])

                class Runnable:
                    def run(self, day):
                        offload_env.store(ran=day)
            """,
        },
    )
    params = {"table": "events", "day": "2024-01-01"}
    assert ok(run_py(project, "pkg.flow.MyWorkflow.step", params)).output["store_params"] == {"result": ["events", 10, "2024-01-01"]}
    # static and class methods need no instance: no 'table' param required
    assert ok(run_py(project, "pkg.flow.MyWorkflow.static", {"day": 1})).output["store_params"] == {"static": 1}
    assert ok(run_py(project, "pkg.flow.MyWorkflow.klass", {"day": 2})).output["store_params"] == {"klass": ["MyWorkflow", 2]}
    # Digdag: naming a class runs its run() method
    assert ok(run_py(project, "pkg.flow.Runnable", {"day": 3})).output["store_params"] == {"ran": 3}


def test_store_export_and_subtasks_through_offload_env_and_digdag(project: Path) -> None:
    write(
        project,
        {
            "tasks.py": """
                import digdag
                import offload_env

                def step(x):
                    assert digdag.env.params is offload_env.params
                    assert offload_env.params["x"] == x and offload_env.task_name == "+flow+task"
                    offload_env.store({"a": 1}, b=2)
                    digdag.env.store({"c": 3})
                    digdag.env.store(params={"d": 4})
                    offload_env.export(e=5)
                    digdag.env.export({"f": 6})
                    digdag.env.add_subtask({"_type": "call", "_command": "child.dig"})
                    digdag.env.add_subtask(other, p=1)
                    return {"returned": "is not stored"}

                def other(p):
                    pass
            """
        },
    )
    run = ok(run_py(project, "tasks.step", {"x": "y"}))
    assert run.output["store_params"] == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert run.output["export_params"] == {"e": 5, "f": 6}
    assert run.output["subtask_config"] == {
        "+subtask0": {"_type": "call", "_command": "child.dig"},
        "+subtask1": {"p": 1, "py>": "tasks.other"},
    }


def test_stdout_is_the_task_log(project: Path) -> None:
    write(project, {"mod.py": "def f(msg):\n    print('hello', msg)\n"})
    assert ok(run_py(project, "mod.f", {"msg": "wörld"})).stdout == "hello wörld\n"


def test_missing_module(project: Path) -> None:
    run = run_py(project, "nowhere.mod.func")
    error = failed(run, "ModuleNotFoundError")
    assert error["message"].startswith("py> nowhere.mod.func: no module named 'nowhere'")
    assert error["backtrace"] == []
    assert "py> nowhere.mod.func" in run.stderr


def test_missing_function(project: Path) -> None:
    write(project, {"mod.py": "def f():\n    pass\n"})
    run = run_py(project, "mod.g")
    error = failed(run, "AttributeError")
    assert error["message"] == "py> mod.g: module 'mod' has no attribute 'g'"
    assert error["message"] in run.stderr
    error = failed(run_py(project, "mod.C.m"), "AttributeError")
    assert error["message"] == "py> mod.C.m: 'mod' has no attribute 'C'"


def test_missing_method(project: Path) -> None:
    write(project, {"mod.py": "class C:\n    pass\n"})
    error = failed(run_py(project, "mod.C.m"), "AttributeError")
    assert error["message"] == "py> mod.C.m: class 'mod.C' has no method 'm'"


def test_bad_callable_name(project: Path) -> None:
    error = failed(run_py(project, "justaname"), "ValueError")
    assert "py> justaname: expected MODULE.FUNCTION" in error["message"]


def test_missing_required_argument(project: Path) -> None:
    write(project, {"mod.py": "def f(x, y=1):\n    pass\nclass C:\n    def __init__(self, z):\n        pass\n    def m(self):\n        pass\n"})
    run = run_py(project, "mod.f", {"y": 2})
    error = failed(run, "TypeError")
    assert error["message"] == "py> mod.f: required argument 'x' is not set in the task's params"
    assert error["message"] in run.stderr
    error = failed(run_py(project, "mod.C.m"), "TypeError")
    assert error["message"] == "py> mod.C.m: required argument 'z' of C.__init__ is not set in the task's params"


def test_exception_in_task_code(project: Path) -> None:
    write(
        project,
        {
            "tasks/__init__.py": "",
            "tasks/work.py": """
                import offload_env

                class QuotaError(Exception):
                    pass

                def helper(n):
                    raise QuotaError("quota of %d exceeded" % n)

                def step(n):
                    offload_env.store(partial=True)
                    helper(n)
            """,
        },
    )
    run = run_py(project, "tasks.work.step", {"n": 3})
    error = failed(run, "tasks.work.QuotaError")  # a failed task's stored params are dropped, as in Digdag
    assert error["message"] == "quota of 3 exceeded"
    path = str(project / "tasks" / "work.py")
    assert error["backtrace"] == [f'File "{path}", line 12, in step', f'File "{path}", line 8, in helper']
    assert "Traceback (most recent call last)" in run.stderr
    assert "tasks.work.QuotaError: quota of 3 exceeded" in run.stderr
    assert "py_runner.py" not in run.stderr  # the runner's frames are not the task's


def test_builtin_exception_class_is_bare(project: Path) -> None:
    write(project, {"mod.py": "def f():\n    return {}['missing']\n"})
    error = failed(run_py(project, "mod.f"), "KeyError")
    assert error["message"] == "'missing'"


def test_import_error_inside_task_module_is_the_tasks_error(project: Path) -> None:
    write(project, {"mod.py": "import not_installed_dependency\ndef f():\n    pass\n"})
    error = failed(run_py(project, "mod.f"), "ModuleNotFoundError")
    assert error["message"] == "No module named 'not_installed_dependency'"
    assert error["backtrace"] == [f'File "{project / "mod.py"}", line 1, in <module>']


def test_sys_exit(project: Path) -> None:
    write(project, {"mod.py": "import sys, offload_env\ndef ok():\n    offload_env.store(a=1)\n    sys.exit(0)\ndef bad():\n    sys.exit(3)\n"})
    assert ok(run_py(project, "mod.ok")).output["store_params"] == {"a": 1}
    run = run_py(project, "mod.bad")
    assert run.returncode == 3
    assert run.output["error"]["class"] == "SystemExit"
    assert run.output["error"]["message"] == "py> mod.bad: exited with status 3"


def test_value_that_is_not_json_fails_at_the_store_call(project: Path) -> None:
    write(project, {"mod.py": "import offload_env\ndef f():\n    offload_env.store(when=object())\n"})
    error = failed(run_py(project, "mod.f"), "TypeError")
    assert error["message"].startswith("store(): value of 'when' can not be written as JSON")
    assert error["backtrace"][0].endswith("line 3, in f")


def test_non_ascii_params(project: Path) -> None:
    write(project, {"mod.py": "import offload_env\ndef f(名前, text):\n    print(text)\n    offload_env.store(名前=名前 + '!', text=text)\n"})
    params = {"名前": "データ", "text": "naïve café 🎉"}
    run = ok(run_py(project, "mod.f", params))
    assert run.output["store_params"] == {"名前": "データ!", "text": "naïve café 🎉"}
    assert run.stdout == "naïve café 🎉\n"


def test_nested_params(project: Path) -> None:
    write(project, {"mod.py": "import digdag\ndef f(config, items):\n    digdag.env.export({'config': config, 'n': len(items), 'first': items[0]})\n"})
    config = {"db": {"host": "h", "ports": [1, 2], "opts": {"ssl": True, "none": None}}}
    items = [{"a": [1, {"b": 2.5}]}, [], "x"]
    run = ok(run_py(project, "mod.f", {"config": config, "items": items}))
    assert run.output["export_params"] == {"config": config, "n": 3, "first": items[0]}


def test_io_directory_outside_working_directory(tmp_path: Path, project: Path) -> None:
    write(project, {"mod.py": "import digdag\ndef f(a):\n    digdag.env.store({'a': a})\n"})
    run = ok(run_py(project, "mod.f", {"a": 1}, io="../io"))
    assert run.output["store_params"] == {"a": 1}
    assert not (project / "__pycache__").exists()  # the project is left as it was


def test_working_directory_modules_come_first(project: Path) -> None:
    # a project module may share a name with a standard library module the runner does not use
    write(project, {"calendar.py": "import offload_env\ndef f():\n    offload_env.store(mine=True)\n"})
    assert ok(run_py(project, "calendar.f")).output["store_params"] == {"mine": True}


def test_async_function_is_awaited(project: Path) -> None:
    write(project, {"mod.py": "import asyncio, offload_env\nasync def f(a):\n    await asyncio.sleep(0)\n    offload_env.store(a=a)\n"})
    assert ok(run_py(project, "mod.f", {"a": 1})).output["store_params"] == {"a": 1}


def test_missing_params_key_means_no_params(project: Path) -> None:
    write(project, {"mod.py": "import offload_env\ndef f(a=1):\n    offload_env.store(a=a, task=offload_env.task_name)\n"})
    assert ok(run_py(project, "mod.f", input_data={})).output["store_params"] == {"a": 1, "task": None}


def test_output_replaces_the_previous_run_and_leaves_no_temporary_file(project: Path) -> None:
    write(project, {"mod.py": "import offload_env\ndef f(a):\n    offload_env.store(a=a)\n"})
    ok(run_py(project, "mod.f", {"a": 1}))
    assert ok(run_py(project, "mod.f", {"a": 2})).output["store_params"] == {"a": 2}
    assert sorted(p.name for p in (project / IO).glob("output.json*")) == ["output.json"]


def _python38() -> str | None:
    candidates = [shutil.which("python3.8"), *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3")))]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def test_runs_on_python_3_8(project: Path) -> None:
    python = _python38()
    if python is None:
        pytest.skip("no Python 3.8 on this machine")
    write(project, {"mod.py": "import digdag, offload_env\nclass C:\n    def m(self, a, b=2, **kw):\n        digdag.env.store({'a': a, 'b': b})\n"})
    assert ok(run_py(project, "mod.C.m", {"a": "ü"}, python=python)).output["store_params"] == {"a": "ü", "b": 2}
    error = failed(run_py(project, "mod.C.m", {}, python=python), "TypeError")
    assert error["message"] == "py> mod.C.m: required argument 'a' is not set in the task's params"
