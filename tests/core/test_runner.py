"""Workflow semantics through the public ``offload.run_workflow`` API, on the local backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import offload
from offload.workflow.nodes import Node


def run(tmp_path: Path, text: str, plugins: tuple[Any, ...] = (), **kwargs: Any) -> tuple[offload.RunOutcome, list[tuple[str, str]], list[tuple[str, str]]]:
    (tmp_path / "flow.dig").write_text(text)
    logs: list[tuple[str, str]] = []
    events: list[tuple[str, str]] = []
    pm = offload.make_plugin_manager(plugins, disabled={"docker", "ecs"})
    with offload.Executor({"command_executor": {"type": "local"}}, plugin_manager=pm) as executor:
        outcome = offload.run_workflow(
            str(tmp_path / "flow.dig"), executor, on_log=lambda t, line: logs.append((t, line)), on_event=lambda t, m: events.append((t, m)), **kwargs
        )
    return outcome, logs, events


def lines(logs: list[tuple[str, str]], task: str) -> list[str]:
    return [line for t, line in logs if t == task]


def states(root: Node) -> dict[str, str]:
    return {n.task.name: n.state for n in root.operator_nodes()}


def test_children_run_in_order_and_stop_at_the_first_failure(tmp_path: Path) -> None:
    outcome, _, _ = run(tmp_path, "+a:\n  sh>: echo a >> order\n+b:\n  sh>: exit 4\n+c:\n  sh>: echo c >> order\n")
    assert outcome.state == "failed"
    assert (tmp_path / "order").read_text() == "a\n"
    assert states(outcome.root) == {"+flow+a": "succeeded", "+flow+b": "failed", "+flow+c": "pending"}


def test_parallel_children_run_at_the_same_time(tmp_path: Path) -> None:
    # each child waits for the other's file: only a parallel run can finish
    text = (
        "+both:\n  _parallel: true\n"
        "  +x:\n    sh>: touch x; i=0; while [ ! -f y ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; test -f y\n"
        "  +y:\n    sh>: touch y; i=0; while [ ! -f x ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; test -f x\n"
    )
    outcome, _, _ = run(tmp_path, text)
    assert outcome.state == "succeeded"


def test_export_env_and_param_substitution(tmp_path: Path) -> None:
    text = (
        "_export:\n  who: world\n  n: 3\n"
        "+g:\n  _export:\n    who: group\n  _env:\n    GREETING: hi ${who}\n"
        '  +t:\n    sh>: echo "$GREETING ${who} ${n} $n ${task_name}"\n'
    )
    outcome, logs, _ = run(tmp_path, text)
    assert outcome.state == "succeeded"
    assert lines(logs, "+flow+g+t") == ["hi group group 3 3 +flow+g+t"]


def test_stored_params_flow_to_later_tasks_and_exported_ones_to_subtasks_only(tmp_path: Path) -> None:
    code = (
        "import offload_env\n\ndef produce(base):\n    offload_env.store(total=int(base) * 2)\n    offload_env.export(note='exported')\n"
        "    offload_env.add_subtask({'sh>': 'echo sub ${total} ${note}'})\n"
    )
    (tmp_path / "tasks.py").write_text(code)
    text = "+produce:\n  py>: tasks.produce\n  base: 21\n+consume:\n  sh>: echo ${total}\n+sibling:\n  sh>: echo ${note}\n"
    outcome, logs, _ = run(tmp_path, text)
    assert lines(logs, "+flow+produce^sub+subtask0") == ["sub 42 exported"]
    assert lines(logs, "+flow+consume") == ["42"]
    assert outcome.state == "failed"  # as in Digdag, a later sibling does not see the export
    assert states(outcome.root)["+flow+sibling"] == "failed"


def test_retry_runs_a_failing_task_again(tmp_path: Path) -> None:
    text = "+flaky:\n  _retry: 2\n  sh>: echo x >> tries; test $(wc -l < tries) -ge 3\n"
    outcome, _, events = run(tmp_path, text)
    assert outcome.state == "succeeded"
    assert (tmp_path / "tries").read_text().count("x") == 3
    assert ("+flow+flaky", "failed (Command failed with code 1); retry 1 of 2") in events


def test_retry_of_a_group_reruns_its_children(tmp_path: Path) -> None:
    text = "+g:\n  _retry: 1\n  +one:\n    sh>: echo one >> log\n  +two:\n    sh>: echo two >> log; test $(wc -l < log) -ge 4\n"
    outcome, _, _ = run(tmp_path, text)
    assert outcome.state == "succeeded"
    assert (tmp_path / "log").read_text().split() == ["one", "two", "one", "two"]


def test_error_tasks_run_with_the_error_and_the_run_still_fails(tmp_path: Path) -> None:
    text = '_error:\n  +notify:\n    sh>: echo "notified ${error.task_name}"\n+broken:\n  sh>: exit 7\n'
    outcome, logs, _ = run(tmp_path, text)
    assert outcome.state == "failed"
    assert lines(logs, "+flow^error+notify") == ["notified +flow+broken"]  # the task that failed, as in Digdag


def test_unknown_param_after_a_storing_task_fails_that_task_without_launching_it(tmp_path: Path) -> None:
    outcome, _, _ = run(tmp_path, "+a:\n  sh>: 'true'\n+b:\n  sh>: echo ${never_stored}\n")
    assert outcome.state == "failed"
    node = next(n for n in outcome.root.operator_nodes() if n.task.name == "+flow+b")
    assert node.result is not None and node.backend is None
    assert "unknown param 'never_stored'" in (node.result.error or "")


def test_py_error_fails_the_task_with_the_exception(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def go():\n    raise RuntimeError('boom')\n")
    outcome, _, events = run(tmp_path, "+t:\n  py>: bad.go\n")
    assert outcome.state == "failed"
    assert ("+flow+t", "failed: Python command failed with code 1: boom (RuntimeError)") in events  # Digdag's wording


def test_timeout_param_fails_a_slow_task(tmp_path: Path) -> None:
    outcome, _, events = run(tmp_path, "+slow:\n  timeout: 1\n  sh>: sleep 60\n")
    assert outcome.state == "failed"
    assert ("+flow+slow", "failed: timed out after 1 s") in events


class Recorder:
    def __init__(self) -> None:
        self.finished: list[tuple[str, str, str]] = []

    @offload.hookimpl
    def offload_task_finished(self, task_name: str, backend_name: str, result: offload.Result) -> None:
        self.finished.append((task_name, backend_name, result.state.value))


def test_offload_task_finished_is_called_once_per_finished_task(tmp_path: Path) -> None:
    recorder = Recorder()
    outcome, _, _ = run(tmp_path, "+a:\n  sh>: 'true'\n+b:\n  sh>: exit 2\n", plugins=(recorder,))
    assert outcome.state == "failed"
    assert recorder.finished == [("+flow+a", "local", "succeeded"), ("+flow+b", "local", "failed")]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo"])
def test_session_params_follow_the_workflow_time_zone(tmp_path: Path, zone: str) -> None:
    text = f"timezone: {zone}\n+t:\n  sh>: echo ${{session_time}} ${{session_date}}\n"
    _, logs, _ = run(tmp_path, text, session_time="2026-01-31T20:00:00+00:00")
    expected = "2026-01-31T20:00:00+00:00 2026-01-31" if zone == "UTC" else "2026-02-01T05:00:00+09:00 2026-02-01"
    assert lines(logs, "+flow+t") == [expected]


def test_a_submission_cut_short_before_its_handle_was_journaled_is_adopted_not_rerun(tmp_path: Path) -> None:
    """The driver died between starting a task and journaling its handle: resume finds it."""
    from offload.workflow.journal import Journal
    from offload.workflow.taskkeys import task_key

    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo ran >> count\n")
    journal = Journal(str(tmp_path))
    run_id = journal.start_run(str(tmp_path / "flow.dig"), "2026-01-01T00:00:00+00:00").run_id
    task_id = f"{run_id}.{task_key('+flow+a')}.1"
    io_dir = f".offload/io/{run_id}/{task_key('+flow+a')}.1"
    journal.submitting(run_id, "+flow+a", 1, task_id, "local")
    journal.close()
    # what the dead driver had started
    (tmp_path / io_dir).mkdir(parents=True)
    request = offload.TaskRequest(task_id=task_id, argv=["/bin/sh", "-c", "echo ran >> count"], project_dir=str(tmp_path), io_dir=io_dir)
    with offload.Executor({"command_executor": {"type": "local"}}) as executor:
        executor.submit(request, backend="local")

    outcome, _, events = run(tmp_path, (tmp_path / "flow.dig").read_text())
    assert outcome.run_id == run_id
    assert outcome.state == "succeeded"
    assert (tmp_path / "count").read_text() == "ran\n"
    assert ("+flow+a", "started on local") in events


def test_tasks_whose_names_differ_only_in_punctuation_run_their_own_scripts(tmp_path: Path) -> None:
    """``+load_data`` and ``+load+data`` once shared an io directory: the wrong script ran."""
    text = "+load_data:\n  sh>: echo first\n+load+data:\n  sh>: exit 3\n+x:y:\n  sh>: echo colon\n+x;y:\n  sh>: echo semicolon\n"
    outcome, logs, _ = run(tmp_path, text)
    assert outcome.state == "failed"
    assert states(outcome.root) == {"+flow+load_data": "succeeded", "+flow+load+data": "failed", "+flow+x:y": "pending", "+flow+x;y": "pending"}
    assert ("+flow+load_data", "first") in logs


def test_parallel_tasks_with_colliding_slugs_each_run_once(tmp_path: Path) -> None:
    text = "+g:\n  _parallel: true\n  +x:y:\n    sh>: echo colon\n  +x;y:\n    sh>: echo semicolon\n  +x_y:\n    sh>: exit 5\n"
    outcome, logs, _ = run(tmp_path, text)
    assert states(outcome.root) == {"+flow+g+x:y": "succeeded", "+flow+g+x;y": "succeeded", "+flow+g+x_y": "failed"}
    assert sorted(line for _, line in logs) == ["colon", "semicolon"]
