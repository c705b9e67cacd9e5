"""The ``rb>`` runtime: ``rb_runner.rb`` run by a real Ruby on real task files.

Ruby is required under CI (the test script installs it); elsewhere these tests are skipped
when no ``ruby`` is on the PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


@pytest.fixture(scope="module")
def ruby() -> str:
    found = shutil.which("ruby")
    if found is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("ruby is not installed, and CI is set: the rb> runtime must be tested (apt-get install -y ruby)")
        pytest.skip("ruby is not installed (set CI=1 to make this a failure)")
    return found


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


@pytest.fixture
def run_rb(ruby: str, project: Path) -> Any:
    def run(name: str, params: dict[str, Any] | None = None, require: str = "", *, io: str = IO, input_data: dict[str, Any] | None = None) -> Run:
        io_dir = project / io
        _runtime.install(str(io_dir))
        data = input_data if input_data is not None else {"params": params or {}, "task_name": "+flow+task"}
        (io_dir / _runtime.INPUT_FILE).write_text(json.dumps(data), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in ("RUBYOPT", "RUBYLIB")}
        env["LANG"] = "C"  # the runner must not depend on the image's locale
        env.pop("LC_ALL", None)
        proc = subprocess.run(
            [ruby, f"{io}/{_runtime.RB_RUNNER}", io, name, require],
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

    return run


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


WORKFLOW = """
    class MyWorkflow
      def self.add(a, b)
        Digdag.env.store(total: a + b)
      end

      def self.defaults(a, b = 5, c: 'c', d: nil)
        Digdag.env.store(got: [a, b, c, d])
      end

      def self.rest(a, **rest)
        OffloadEnv.store('a' => a, 'rest' => rest)
      end

      def self.keywords(day:, limit: 10)
        Digdag.env.store(got: [day, limit])
      end
    end
"""


def test_positional_arguments_by_name(run_rb: Any, project: Path) -> None:
    write(project, {"tasks/workflow.rb": WORKFLOW})
    run = ok(run_rb("MyWorkflow.add", {"b": 2, "a": 40, "unused": True}, "tasks/workflow"))
    assert run.output == {"store_params": {"total": 42}, "export_params": {}, "subtask_config": {}}


def test_defaults_kept_when_param_missing(run_rb: Any, project: Path) -> None:
    write(project, {"tasks/workflow.rb": WORKFLOW})
    assert ok(run_rb("MyWorkflow.defaults", {"a": 1}, "tasks/workflow.rb")).output["store_params"] == {"got": [1, 5, "c", None]}
    params = {"a": 1, "b": 2, "c": "x", "d": [True]}
    assert ok(run_rb("MyWorkflow.defaults", params, "tasks/workflow.rb")).output["store_params"] == {"got": [1, 2, "x", [True]]}


def test_keyword_arguments(run_rb: Any, project: Path) -> None:
    write(project, {"tasks/workflow.rb": WORKFLOW})
    assert ok(run_rb("MyWorkflow.keywords", {"day": "d"}, "tasks/workflow")).output["store_params"] == {"got": ["d", 10]}
    error = failed(run_rb("MyWorkflow.keywords", {}, "tasks/workflow"), "ArgumentError")
    assert error["message"] == "rb> MyWorkflow.keywords: required argument 'day' is not set in the task's params"


def test_keyword_rest_receives_all_params(run_rb: Any, project: Path) -> None:
    write(project, {"tasks/workflow.rb": WORKFLOW})
    params = {"a": 1, "b": {"c": 2}}
    assert ok(run_rb("MyWorkflow.rest", params, "tasks/workflow")).output["store_params"] == {"a": 1, "rest": params}


def test_instance_method_on_class_new(run_rb: Any, project: Path) -> None:
    write(
        project,
        {
            "lib/flow.rb": """
                module Jobs
                  class Daily
                    def initialize(table, limit = 10)
                      @table = table
                      @limit = limit
                    end

                    def step(day)
                      Digdag.env.store(result: [@table, @limit, day])
                    end
                  end

                  class Plain
                    def step
                      Digdag.env.store(plain: true)
                    end
                  end
                end
            """
        },
    )
    params = {"table": "events", "day": "2024-01-01"}
    assert ok(run_rb("Jobs::Daily.step", params, "lib/flow")).output["store_params"] == {"result": ["events", 10, "2024-01-01"]}
    assert ok(run_rb("Jobs::Plain.step", {}, "lib/flow")).output["store_params"] == {"plain": True}
    error = failed(run_rb("Jobs::Daily.step", {"day": 1}, "lib/flow"), "ArgumentError")
    assert error["message"] == "rb> Jobs::Daily.step: required argument 'table' of Jobs::Daily#initialize is not set in the task's params"


def test_module_function(run_rb: Any, project: Path) -> None:
    write(project, {"helpers.rb": "module Helpers\n  def self.go(x)\n    OffloadEnv.store(x: x)\n  end\nend\n"})
    assert ok(run_rb("Helpers.go", {"x": 1}, "helpers")).output["store_params"] == {"x": 1}


def test_require_from_the_load_path(run_rb: Any, project: Path) -> None:
    # a library that is not a project file: Ruby's own (JSON is loaded by the runner already)
    write(project, {})
    ok(run_rb("JSON.generate", {"obj": [1]}, "json"))


def test_store_export_and_subtasks_through_offload_env_and_digdag(run_rb: Any, project: Path) -> None:
    write(
        project,
        {
            "tasks.rb": """
                class Flow
                  def step(x)
                    raise 'params differ' unless Digdag.env.params.equal?(OffloadEnv.params) && Digdag.env.params['x'] == x
                    raise 'task name' unless OffloadEnv.task_name == '+flow+task'
                    OffloadEnv.store({ 'a' => 1 }, b: 2)
                    Digdag.env.store(c: 3)
                    Digdag.env.store('d' => { e: [1] })
                    OffloadEnv.export(e: 5)
                    Digdag.env.export({ 'f' => 6 })
                    Digdag.env.add_subtask({ '_type' => 'call', '_command' => 'child.dig' })
                    Digdag.env.add_subtask(Flow, :other, 'p' => 1)
                    { 'returned' => 'is not stored' }
                  end

                  def other(p); end
                end
            """
        },
    )
    run = ok(run_rb("Flow.step", {"x": "y"}, "tasks"))
    assert run.output["store_params"] == {"a": 1, "b": 2, "c": 3, "d": {"e": [1]}}
    assert run.output["export_params"] == {"e": 5, "f": 6}
    assert run.output["subtask_config"] == {
        "+subtask0": {"_type": "call", "_command": "child.dig"},
        "+subtask1": {"p": 1, "rb>": "Flow.other"},
    }


def test_stdout_is_the_task_log(run_rb: Any, project: Path) -> None:
    write(project, {"t.rb": 'class T\n  def self.f(msg)\n    puts "hello #{msg}"\n  end\nend\n'})
    assert ok(run_rb("T.f", {"msg": "wörld"}, "t")).stdout == "hello wörld\n"


def test_missing_require_file(run_rb: Any, project: Path) -> None:
    run = run_rb("T.f", {}, "tasks/nowhere")
    error = failed(run, "LoadError")
    assert error["message"].startswith('rb> T.f: can not load "tasks/nowhere"')
    assert error["message"] in run.stderr


def test_missing_class(run_rb: Any, project: Path) -> None:
    write(project, {"t.rb": "class T; end\n"})
    run = run_rb("Nope::T.f", {}, "t")
    error = failed(run, "NameError")
    assert error["message"].startswith("rb> Nope::T.f: uninitialized constant Nope::T")
    assert error["backtrace"] == []
    assert "rb> Nope::T.f" in run.stderr
    # nothing required: the class is not defined either
    assert failed(run_rb("T.f"), "NameError")["message"].startswith("rb> T.f: uninitialized constant T")


def test_missing_method(run_rb: Any, project: Path) -> None:
    write(project, {"t.rb": "class T; end\n"})
    error = failed(run_rb("T.f", {}, "t"), "NoMethodError")
    assert error["message"] == "rb> T.f: T has neither a public instance method nor a class method named f"


def test_bad_callable_name(run_rb: Any, project: Path) -> None:
    error = failed(run_rb("justaname"), "ArgumentError")
    assert error["message"].startswith("rb> justaname: expected CLASS.METHOD")


def test_missing_required_argument(run_rb: Any, project: Path) -> None:
    write(project, {"tasks/workflow.rb": WORKFLOW})
    run = run_rb("MyWorkflow.add", {"b": 2}, "tasks/workflow")
    error = failed(run, "ArgumentError")
    assert error["message"] == "rb> MyWorkflow.add: required argument 'a' is not set in the task's params"
    assert error["message"] in run.stderr


def test_exception_in_task_code(run_rb: Any, project: Path) -> None:
    write(
        project,
        {
            "tasks/work.rb": """
                class QuotaError < StandardError; end

                class Work
                  def self.helper(n)
                    raise QuotaError, "quota of #{n} exceeded"
                  end

                  def self.step(n)
                    Digdag.env.store(partial: true)
                    helper(n)
                  end
                end
            """
        },
    )
    run = run_rb("Work.step", {"n": 3}, "tasks/work")
    error = failed(run, "QuotaError")  # a failed task's stored params are dropped, as in Digdag
    assert error["message"] == "quota of 3 exceeded"
    path = str(project / "tasks" / "work.rb")
    assert len(error["backtrace"]) == 2
    assert error["backtrace"][0].startswith(f"{path}:6:in ")
    assert error["backtrace"][1].startswith(f"{path}:11:in ")
    assert "quota of 3 exceeded (QuotaError)" in run.stderr
    assert "rb_runner.rb" not in run.stderr  # the runner's frames are not the task's


def test_error_while_loading_the_required_file(run_rb: Any, project: Path) -> None:
    write(project, {"broken.rb": "require 'not_installed_gem'\nclass Broken; end\n"})
    error = failed(run_rb("Broken.f", {}, "broken"), "LoadError")
    assert "not_installed_gem" in error["message"]
    assert error["backtrace"][0].startswith(f"{project / 'broken.rb'}:1:in ")


def test_exit_in_task_code(run_rb: Any, project: Path) -> None:
    write(project, {"t.rb": "class T\n  def self.ok\n    Digdag.env.store(a: 1)\n    exit 0\n  end\n\n  def self.bad\n    exit 3\n  end\nend\n"})
    assert ok(run_rb("T.ok", {}, "t")).output["store_params"] == {"a": 1}
    run = run_rb("T.bad", {}, "t")
    assert run.returncode == 3
    assert run.output["error"]["class"] == "SystemExit"
    assert run.output["error"]["message"] == "rb> T.bad: exited with status 3"


def test_non_ascii_params(run_rb: Any, project: Path) -> None:
    write(project, {"t.rb": "class T\n  def self.f(text)\n    puts text\n    Digdag.env.store('名前' => text + '!')\n  end\nend\n"})
    run = ok(run_rb("T.f", {"text": "naïve café 🎉 データ"}, "t"))
    assert run.output["store_params"] == {"名前": "naïve café 🎉 データ!"}
    assert run.stdout == "naïve café 🎉 データ\n"


def test_nested_params(run_rb: Any, project: Path) -> None:
    task = "class T\n  def self.f(config, items)\n    Digdag.env.export('config' => config, 'n' => items.size, 'first' => items[0])\n  end\nend\n"
    write(project, {"t.rb": task})
    config = {"db": {"host": "h", "ports": [1, 2], "opts": {"ssl": True, "none": None}}}
    items = [{"a": [1, {"b": 2.5}]}, [], "x"]
    run = ok(run_rb("T.f", {"config": config, "items": items}, "t"))
    assert run.output["export_params"] == {"config": config, "n": 3, "first": items[0]}


def test_io_directory_outside_working_directory(run_rb: Any, project: Path) -> None:
    write(project, {"t.rb": "require 'offload_env'\nclass T\n  def self.f(a)\n    OffloadEnv.store(a: a)\n  end\nend\n"})
    assert ok(run_rb("T.f", {"a": 1}, "t", io="../io")).output["store_params"] == {"a": 1}


def test_output_replaces_the_previous_run_and_leaves_no_temporary_file(run_rb: Any, project: Path) -> None:
    write(project, {"t.rb": "class T\n  def self.f(a)\n    OffloadEnv.store(a: a)\n  end\nend\n"})
    ok(run_rb("T.f", {"a": 1}, "t"))
    assert ok(run_rb("T.f", {"a": 2}, "t")).output["store_params"] == {"a": 2}
    assert sorted(p.name for p in (project / IO).glob("output.json*")) == ["output.json"]
