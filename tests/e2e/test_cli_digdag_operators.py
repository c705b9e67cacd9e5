"""Digdag's operators that run inside the engine, through ``offload run``: ``echo>``,
``fail>``, ``call>``, ``if>``, ``for_each>``, ``for_range>``, ``loop>``, with the task
names Digdag gives their subtasks."""

from __future__ import annotations

from pathlib import Path

import pytest
from flow_cli import logged, run


def test_echo_and_if_with_its_else(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = (
        "_export:\n  who: world\n  go: false\n"
        "+hello:\n  echo>: hello ${who}\n"
        "+branch:\n  if>: ${go}\n  _do:\n    echo>: went\n  _else_do:\n    +a:\n      echo>: stayed\n    +b:\n      sh>: echo shell too\n"
    )
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    assert logged(out) == ["[+flow+hello] hello world", "[+flow+branch^sub+a] stayed", "[+flow+branch^sub+b] shell too"]


def test_for_each_runs_every_combination_in_order_with_digdags_names(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = "+each:\n  for_each>:\n    fruit: [apple, orange]\n    verb: [eat, throw]\n  _do:\n    sh>: echo ${verb} ${fruit}\n"
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    assert logged(out) == [
        "[+flow+each^sub+for-0=fruit=0=apple&1=verb=0=eat] eat apple",
        "[+flow+each^sub+for-0=fruit=0=apple&1=verb=1=throw] throw apple",
        "[+flow+each^sub+for-0=fruit=1=orange&1=verb=0=eat] eat orange",
        "[+flow+each^sub+for-0=fruit=1=orange&1=verb=1=throw] throw orange",
    ]


def test_for_each_takes_a_list_a_task_stored_and_runs_it_in_parallel(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tasks.py").write_text("import digdag\n\ndef pick():\n    digdag.env.store(ids=[1, 2, 3])\n")
    # each iteration waits for all three to have started: only a parallel run ends
    wait = "touch started.${id}; i=0; while [ $(ls started.* | wc -l) -lt 3 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; echo id ${id}"
    flow = f"+pick:\n  py>: tasks.pick\n+each:\n  for_each>:\n    id: ${{ids}}\n  _parallel: true\n  _do:\n    sh>: {wait}\n"
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    assert sorted(logged(out)) == [f"[+flow+each^sub+for-0=id={i - 1}={i}] id {i}" for i in (1, 2, 3)]
    assert len(list(project.glob("started.*"))) == 3


def test_for_range_and_loop_export_their_values(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = (
        "+range:\n  for_range>:\n    from: 0\n    to: 10\n    slices: 3\n  _do:\n    echo>: ${range.index} ${range.from} ${range.to}\n"
        "+loop:\n  loop>: 2\n  _do:\n    sh>: echo i=${i}\n"
    )
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    assert logged(out) == [
        "[+flow+range^sub+range-from=0&to=4] 0 0 4",
        "[+flow+range^sub+range-from=4&to=8] 1 4 8",
        "[+flow+range^sub+range-from=8&to=10] 2 8 10",
        "[+flow+loop^sub+loop-0] i=0",
        "[+flow+loop^sub+loop-1] i=1",
    ]


def test_fail_fails_with_its_message_for_the_error_tasks(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = "+check:\n  fail>: the input is empty\n  _error:\n    echo>: 'caught: ${error.message}'\n+never:\n  echo>: not reached\n"
    code, out, err = run(project, capsys, flow)
    assert code == 1
    assert logged(out) == ["[+flow+check^error] caught: the input is empty"]
    assert "+flow+check: failed (the input is empty); running its _error tasks" in err


def test_call_runs_another_workflow_from_the_callers_directory(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "sub").mkdir()
    (project / "sub" / "child.dig").write_text("+inner:\n  call>: grandchild\n")  # relative to sub/, .dig optional
    (project / "sub" / "grandchild.dig").write_text("timezone: Asia/Tokyo\n+deep:\n  echo>: deep ${who}\n")
    code, out, err = run(project, capsys, "_export:\n  who: caller\n+c:\n  call>: sub/child.dig\n")
    assert code == 0, err
    assert logged(out) == ["[+flow+c^sub+inner^sub+deep] deep caller"]


def test_call_of_a_missing_file_or_outside_the_project_fails_the_task(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(project, capsys, "+c:\n  call>: nowhere\n")
    assert code == 1
    assert "+flow+c: failed: call>: " in err and "nowhere.dig: cannot read workflow file" in err
    code, _, err = run(project, capsys, "+c:\n  call>: ../outside.dig\n", "--rerun")
    assert code == 1
    assert "call>: '../outside.dig' is outside the project" in err


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        ("+a:\n  loop>: 2\n", "flow.dig: +flow+a: _do: loop> needs a _do: the tasks it runs"),
        ("+a:\n  if>: true\n", "flow.dig: +flow+a: _do: if> needs a _do or an _else_do"),
        ("+a:\n  for_range>: {from: 0, to: 3, stride: 1}\n  _do:\n    echo>: x\n", "flow.dig: +flow+a: for_range>.stride: unknown key"),
        ("+a:\n  sh>: echo\n  _do:\n    echo>: x\n", "flow.dig: +flow+a: _do: only for the operators if>, for_each>, for_range> and loop>"),
        ("+a:\n  if>: true\n  _do:\n    td>: q.sql\n", "flow.dig: +flow+a^sub: td>: unknown operator"),
        ("+a:\n  if>: ${1 < 2}\n  _do:\n    echo>: x\n", "offload has no JavaScript engine to evaluate expressions"),
    ],
)
def test_an_engine_operator_written_wrong_is_reported_before_anything_runs(project: Path, capsys: pytest.CaptureFixture[str], flow: str, message: str) -> None:
    code, _, err = run(project, capsys, "+first:\n  sh>: touch ran\n" + flow)
    assert code == 2
    assert message in err
    assert not (project / "ran").exists()


def test_a_value_an_operator_cannot_use_fails_the_task_at_run_time(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(project, capsys, "_export:\n  flag: maybe\n+a:\n  if>: ${flag}\n  _do:\n    echo>: x\n")
    assert code == 1
    assert "+flow+a: failed: if>: must be true or false, got 'maybe'" in err


def test_a_typo_after_engine_operators_is_still_caught_before_the_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # echo> and loop> store no params, so an unknown name after them cannot come from them
    flow = "+a:\n  echo>: hi\n+l:\n  loop>: 2\n  _do:\n    echo>: ${i} ${typo}\n+b:\n  sh>: echo ${range}\n"
    code, _, err = run(project, capsys, flow)
    assert code == 2
    assert "flow.dig: +flow+l^sub: echo>: ${typo}: unknown param 'typo'" in err
    assert "flow.dig: +flow+b: sh>: ${range}: unknown param 'range'" in err
    assert "${i}" not in err
