"""Params between tasks as Digdag passes them, through ``offload run``: ``store`` to every
later task (merged in the order the tasks are written), ``export`` to the task's own
subtasks only, generated subtasks (``add_subtask``) after their task, and the ``error``
param of ``_error`` tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
from flow_cli import log, run

STORES = """\
import offload_env, time

def slow():
    time.sleep(0.6)
    offload_env.store(winner="first written", limits={"cpu": 1})

def fast():
    offload_env.store(winner="second written", limits={"memory": 2})
"""


def test_stores_of_parallel_tasks_merge_in_written_order_not_finish_order(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # +fast finishes first; +slow is written first, so +fast's value wins, as in Digdag
    (project / "tasks.py").write_text(STORES)
    flow = (
        "+both:\n  _parallel: true\n  +slow:\n    py>: tasks.slow\n  +fast:\n    py>: tasks.fast\n"
        "+after:\n  sh>: echo ${winner} ${limits.cpu} ${limits.memory}\n"
    )
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    assert log(out, "+flow+after") == ["second written 1 2"]


EXPORTS = """\
import digdag

def parent():
    digdag.env.export(note="exported")
    digdag.env.store(count=2)
    digdag.env.add_subtask(child, extra="x")
    digdag.env.add_subtask({"sh>": "echo dict form ${note} ${count}"})

def child(extra, note):
    print("child", extra, note)
"""


def test_exports_reach_generated_subtasks_which_run_in_order_after_the_task(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tasks.py").write_text(EXPORTS)
    flow = "+p:\n  py>: tasks.parent\n+next:\n  sh>: echo next ${count}\n"
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    tasks = [line.split("]")[0][1:] for line in out if line.startswith("[")]
    assert tasks == ["+flow+p^sub+subtask0", "+flow+p^sub+subtask1", "+flow+next"]
    assert log(out, "+flow+p^sub+subtask0") == ["child x exported"]
    assert log(out, "+flow+p^sub+subtask1") == ["dict form exported 2"]
    assert log(out, "+flow+next") == ["next 2"]


def test_an_export_is_not_seen_by_a_later_sibling(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tasks.py").write_text("import digdag\n\ndef go():\n    digdag.env.export(note='mine')\n")
    code, _, err = run(project, capsys, "+a:\n  py>: tasks.go\n+b:\n  sh>: echo ${note}\n")
    assert code == 1
    assert "+flow+b: failed: ${note}: unknown param 'note'" in err


def test_ruby_subtasks_in_both_forms(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tasks.rb").write_text(
        "class Gen\n  def run\n    Digdag.env.add_subtask(Gen, :step, 'n' => 1)\n    Digdag.env.add_subtask('sh>' => 'echo from the hash')\n  end\n"
        '  def step(n:)\n    puts "step #{n}"\n  end\nend\n'
    )
    code, out, err = run(project, capsys, "_export:\n  rb:\n    require: tasks\n+g:\n  rb>: Gen.run\n")
    assert code == 0, err
    assert log(out, "+flow+g^sub+subtask0") == ["step 1"]
    assert log(out, "+flow+g^sub+subtask1") == ["from the hash"]


def test_a_subtask_with_an_operator_offload_cannot_run_fails_its_task(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tasks.py").write_text("import digdag\n\ndef go():\n    digdag.env.add_subtask({'td>': 'q.sql'})\n")
    code, _, err = run(project, capsys, "+a:\n  py>: tasks.go\n")
    assert code == 1
    assert "+flow+a: failed: its subtasks cannot run:" in err
    assert "td>: unknown operator" in err


def test_a_group_error_task_sees_the_failing_task_and_digdag_message(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = '+group:\n  _error:\n    sh>: echo "${error.task_name} - ${error.message}"\n  +ok:\n    sh>: "true"\n  +inner:\n    +broken:\n      sh>: exit 3\n'
    code, out, _ = run(project, capsys, flow)
    assert code == 1
    assert log(out, "+flow+group^error") == ["+flow+group+inner+broken - Command failed with code 3 (runtime)"]


def test_an_error_task_sees_a_python_exception_with_its_class_and_stack_trace(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.py").write_text("def go():\n    raise ValueError('no such row')\n")
    flow = "+t:\n  py>: bad.go\n  _error:\n    py>: bad_handler.show\n"
    (project / "bad_handler.py").write_text(
        "import digdag\n\ndef show():\n    e = digdag.env.params['error']\n"
        "    print(e['message'])\n    print(e['class'])\n    print('line 2, in go' in e['stacktrace'])\n"
    )
    code, out, _ = run(project, capsys, flow)
    assert code == 1
    assert log(out, "+flow+t^error") == ["Python command failed with code 1: no such row (ValueError) (runtime)", "ValueError", "True"]
