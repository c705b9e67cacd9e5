"""Digdag's run flags through ``offload run``: ``--start`` and ``--goal`` run part of a
workflow, ``--dry-run`` checks and plans everything and launches nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.workflow.cli import main

FLOW = """\
+prepare:
  sh>: echo prepare >> ran
+work:
  +extract:
    sh>: echo extract >> ran
  +load:
    sh>: echo load >> ran
+publish:
  sh>: echo publish >> ran
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "local")
    (tmp_path / "flow.dig").write_text(FLOW)
    return tmp_path


def ran(project: Path) -> list[str]:
    path = project / "ran"
    return path.read_text().split() if path.exists() else []


def test_start_skips_the_tasks_before(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(project / "flow.dig"), "--start", "+work+load"]) == 0, capsys.readouterr().err
    assert ran(project) == ["load", "publish"]
    assert "+flow+prepare: skipped (outside --start/--goal)" in capsys.readouterr().err


def test_goal_runs_up_to_the_task_and_everything_under_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(project / "flow.dig"), "--goal", "+work"]) == 0, capsys.readouterr().err
    assert ran(project) == ["prepare", "extract", "load"]


def test_start_and_goal_together_and_names_with_the_workflow(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(project / "flow.dig"), "--start", "+flow+work+extract", "--goal", "work+extract"]) == 0, capsys.readouterr().err
    assert ran(project) == ["extract"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "+nope"], "--start +nope: no such task in flow (tasks: +prepare, +work, +work+extract, +work+load, +publish)"),
        (["--start", "+publish", "--goal", "+prepare"], "--start +publish comes after --goal +prepare: nothing would run"),
    ],
)
def test_a_wrong_start_or_goal_is_exit_2_and_nothing_runs(project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["run", str(project / "flow.dig"), *args]) == 2
    assert message in capsys.readouterr().err
    assert ran(project) == []
    assert not (project / ".offload" / "journal.sqlite").exists()


def test_dry_run_prints_the_plan_and_launches_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(project / "flow.dig"), "--dry-run", "--goal", "+work"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dry run of flow (") and out[0].endswith("nothing launched")
    assert out[1:] == [
        "+flow+prepare: would run on local",
        "+flow+work+extract: would run on local",
        "+flow+work+load: would run on local",
        "+flow+publish: skipped (outside --start/--goal)",
    ]
    assert ran(project) == []
    assert not (project / ".offload").exists()


def test_dry_run_stops_on_what_the_run_would_stop_on(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flow.dig").write_text("+a:\n  sh>: echo ${nope}\n")
    assert main(["run", str(project / "flow.dig"), "--dry-run"]) == 2
    assert "${nope}: unknown param 'nope'" in capsys.readouterr().err
