"""``offload runs``, ``offload status`` and ``offload explain --json`` on real local runs.

They read the journal and never write it, never take the run lock (so they answer while
a run goes on), and a journal they cannot use is one message, exit 2, the file untouched.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_cli_crash_resume import OFFLOAD
from test_cli_journal import BREAKAGES, MESSAGES

from offload.testing import wait_for_line
from offload.workflow.cli import main

LONG_ERROR = "the load failed: " + "x" * 100

FLOW = f"""\
+extract:
  sh>: echo extracted
+transform:
  _retry: 1
  sh>: |
    echo try >> tries
    [ "$(wc -l < tries)" -ge 2 ] || exit 3
+load:
  sh>: |
    if [ -f fail ]; then
      printf '%s' '{{"error": "{LONG_ERROR}\\nsecond line"}}' > "$OFFLOAD_IO_DIR/output.json"
      exit 4
    fi
+say:
  echo>: done
"""

SLOW = """\
+first:
  sh>: echo first
+slow:
  sh>: |
    echo slow is running
    while [ ! -f release ]; do sleep 0.05; done
+last:
  sh>: echo last
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flow.dig").write_text(FLOW)
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", "docker ecs")
    return tmp_path


def journal(project: Path) -> Path:
    return project / ".offload" / "journal.sqlite"


def offload(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = offload(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)  # one document: json.loads refuses anything after it


@pytest.fixture
def two_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """A run that succeeds (its transform retried once), then one whose load fails."""
    assert main(["run", str(project / "flow.dig")]) == 0, capsys.readouterr().err
    (project / "fail").write_text("")
    (project / "tries").unlink()
    assert main(["run", str(project / "flow.dig")]) == 1
    capsys.readouterr()
    runs = as_json(capsys, "runs", "--project", str(project))["runs"]
    return runs[1]["run_id"], runs[0]["run_id"]


RUN_KEYS = {"run_id", "workflow", "workflow_path", "state", "session_time", "started_at", "finished_at", "duration", "tasks"}
TASK_KEYS = {"task", "task_id", "backend", "state", "exit_code", "attempts", "started_at", "finished_at", "duration", "error"}


def test_runs_lists_every_run_newest_first_with_its_tasks_by_state(project: Path, capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str]) -> None:
    succeeded, failed = two_runs
    runs = as_json(capsys, "runs", "--project", str(project))["runs"]
    assert [r["run_id"] for r in runs] == [failed, succeeded]
    assert all(set(r) == RUN_KEYS for r in runs)
    assert [r["state"] for r in runs] == ["failed", "succeeded"]
    # the latest attempt of each task: the retried transform counts once, as succeeded
    assert runs[1]["tasks"] == {"succeeded": 4}
    assert runs[0]["tasks"] == {"succeeded": 2, "failed": 1}  # +say never ran
    assert runs[0]["workflow"] == "flow" and runs[0]["workflow_path"].endswith("flow.dig")
    assert runs[0]["finished_at"] is not None and runs[0]["duration"] >= 0
    assert runs[1]["started_at"] < runs[0]["started_at"]

    code, out, _ = offload(capsys, "runs", "--project", str(project))
    assert code == 0
    header, _, first, second = out.splitlines()
    assert header.split() == ["run", "workflow", "started", "duration", "state", "tasks"]
    assert first.split()[:2] == [failed, "flow"] and first.split()[5:] == ["failed", "2", "succeeded,", "1", "failed"]
    assert second.split()[:2] == [succeeded, "flow"] and second.split()[5:] == ["succeeded", "4", "succeeded"]


def test_runs_of_one_workflow_and_of_the_current_directory(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, two_runs: tuple[str, str]
) -> None:
    (project / "other.dig").write_text("+x:\n  sh>: echo other\n")
    assert main(["run", str(project / "other.dig")]) == 0
    capsys.readouterr()
    monkeypatch.chdir(project)
    assert [r["workflow"] for r in as_json(capsys, "runs")["runs"]] == ["other", "flow", "flow"]
    for name in ("flow", "flow.dig", str(project / "flow.dig")):
        assert [r["run_id"] for r in as_json(capsys, "runs", "--workflow", name)["runs"]] == [two_runs[1], two_runs[0]]
    assert as_json(capsys, "runs", "--workflow", "nope")["runs"] == []
    assert offload(capsys, "runs", "--workflow", "nope")[:2] == (0, "no runs of workflow nope\n")


def test_status_shows_each_task_of_the_latest_run(project: Path, capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str]) -> None:
    doc = as_json(capsys, "status", "--project", str(project))
    assert doc["run"]["run_id"] == two_runs[1] and set(doc["run"]) == RUN_KEYS
    tasks = {t["task"]: t for t in doc["tasks"]}
    # the tasks the run reached, in the order they started (+say never did)
    assert [t["task"] for t in doc["tasks"]] == ["+flow+extract", "+flow+transform", "+flow+load"]
    assert all(set(t) == TASK_KEYS for t in doc["tasks"])
    load = tasks["+flow+load"]
    assert (load["backend"], load["state"], load["exit_code"], load["attempts"]) == ("local", "failed", 4, 1)
    assert load["error"] == f"{LONG_ERROR}\nsecond line"  # whole in JSON
    assert load["duration"] is not None and load["started_at"] <= load["finished_at"]
    assert tasks["+flow+extract"]["error"] is None and tasks["+flow+extract"]["task_id"]

    code, out, _ = offload(capsys, "status", "--project", str(project))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"run {two_runs[1]} of flow (") and "failed" in lines[0]
    assert lines[1].split() == ["task", "backend", "state", "exit", "attempts", "duration", "error"]
    (load_line,) = [line for line in lines if line.startswith("+flow+load")]
    assert load_line.split()[1:5] == ["local", "failed", "4", "1"]
    assert load_line.endswith("...") and "second line" not in load_line and len(load_line.split("  ")[-1]) <= 60
    assert "the load failed: xxx" in load_line


def test_status_of_an_earlier_run_shows_the_retried_task_attempts(project: Path, capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str]) -> None:
    doc = as_json(capsys, "status", two_runs[0], "--project", str(project))
    assert doc["run"]["run_id"] == two_runs[0] and doc["run"]["state"] == "succeeded"
    assert as_json(capsys, "status", two_runs[0][:-1], "--project", str(project)) == doc  # a unique start of the id
    tasks = {t["task"]: t for t in doc["tasks"]}
    assert (tasks["+flow+transform"]["attempts"], tasks["+flow+transform"]["state"], tasks["+flow+transform"]["exit_code"]) == (2, "succeeded", 0)
    assert tasks["+flow+transform"]["task_id"].endswith(".2")
    assert tasks["+flow+extract"]["attempts"] == 1
    assert (tasks["+flow+say"]["backend"], tasks["+flow+say"]["state"]) == ("engine", "succeeded")
    _, out, _ = offload(capsys, "status", two_runs[0], "--project", str(project))
    (line,) = [line for line in out.splitlines() if line.startswith("+flow+transform")]
    assert line.split()[1:5] == ["local", "succeeded", "0", "2"]


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize("command", ["runs", "status"])
def test_reading_never_writes_the_journal(project: Path, capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str], command: str) -> None:
    before = snapshot(journal(project))
    as_json(capsys, command, "--project", str(project))
    offload(capsys, command, "--project", str(project))
    assert snapshot(journal(project)) == before


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("command", [["runs"], ["status"], ["runs", "--json"], ["status", "--json"]])
def test_an_unusable_journal_is_one_message_exit_2_and_untouched(
    project: Path, capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str], breakage: str, command: list[str]
) -> None:
    BREAKAGES[breakage](journal(project))
    before = snapshot(journal(project))
    code, out, err = offload(capsys, *command, "--project", str(project))
    assert code == 2, err
    assert out == ""
    assert f"journal {journal(project)} {MESSAGES[breakage]}" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "unexpected" not in err
    assert snapshot(journal(project)) == before


def test_an_unknown_run_is_exit_2_and_the_journal_untouched(project: Path, capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str]) -> None:
    before = snapshot(journal(project))
    code, out, err = offload(capsys, "status", "20000101T000000-nope", "--project", str(project), "--json")
    assert (code, out) == (2, "")
    assert "no run '20000101T000000-nope' in journal" in err and "offload runs" in err
    assert snapshot(journal(project)) == before


def test_a_start_of_several_run_ids_is_exit_2(project: Path, capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str]) -> None:
    code, out, err = offload(capsys, "status", "2", "--project", str(project))
    assert (code, out) == (2, "")
    assert f"run '2' is the start of 2 runs' ids ({two_runs[1]}, {two_runs[0]}): give more of it" in err


def test_a_bad_record_is_exit_2_and_the_journal_untouched(project: Path, capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str]) -> None:
    db = sqlite3.connect(journal(project))
    db.execute("UPDATE tasks SET state = 'exploded' WHERE task_name = '+flow+load'")
    db.commit()
    db.close()
    before = snapshot(journal(project))
    code, _, err = offload(capsys, "status", "--project", str(project))
    assert code == 2 and f"journal {journal(project)} has an unreadable record of task +flow+load" in err
    assert snapshot(journal(project)) == before


def test_no_journal_is_exit_2_and_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["runs"], ["status"], ["status", "some-run"], ["runs", "--json"]):
        code, out, err = offload(capsys, *command, "--project", str(tmp_path))
        assert (code, out) == (2, ""), err
        assert f"no journal in {tmp_path}" in err
    assert list(tmp_path.iterdir()) == []


def test_a_journal_without_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A journal made by a run refused before it started (a bad param) holds no runs."""
    assert main(["run", str(project / "flow.dig"), "--session-time", "not-a-time"]) == 2
    capsys.readouterr()
    assert journal(project).exists()
    assert as_json(capsys, "runs", "--project", str(project)) == {"runs": []}
    assert offload(capsys, "runs", "--project", str(project))[:2] == (0, "no runs\n")
    code, _, err = offload(capsys, "status", "--project", str(project))
    assert code == 2 and "has no runs yet" in err


def test_runs_and_status_answer_while_a_run_holds_the_lock(tmp_path: Path) -> None:
    (tmp_path / "flow.dig").write_text(SLOW)
    env = {**os.environ, "OFFLOAD_DISABLE_PLUGINS": "docker ecs"}

    def read(*args: str) -> Any:
        done = subprocess.run([*OFFLOAD, *args, "--json"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    driver = subprocess.Popen([*OFFLOAD, "run", "flow.dig"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_for_line(driver, "slow is running")
        (run,) = read("runs")["runs"]
        assert (run["state"], run["finished_at"], run["tasks"]) == ("running", None, {"running": 1, "succeeded": 1})
        status = read("status")
        assert [(t["task"], t["state"], t["exit_code"]) for t in status["tasks"]] == [("+flow+first", "succeeded", 0), ("+flow+slow", "running", None)]
        assert status["tasks"][1]["finished_at"] is None and status["tasks"][1]["started_at"] is not None
        # the driver still holds the lock: a second driver is refused
        second = subprocess.run([*OFFLOAD, "run", "flow.dig"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
        assert second.returncode == 2 and "another offload run is driving this workflow" in second.stderr
    finally:
        (tmp_path / "release").write_text("")
        output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 0, output
    (run,) = read("runs")["runs"]
    assert (run["state"], run["tasks"]) == ("succeeded", {"succeeded": 3})


def test_explain_json_is_the_same_plan_as_the_text(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = str(project / "flow.dig")
    doc = as_json(capsys, "explain", flow)
    assert set(doc) == {"workflow", "path", "config", "backends", "notes", "tasks"}
    assert (doc["workflow"], doc["path"], doc["notes"]) == ("flow", flow, [])
    assert [t["task"] for t in doc["tasks"]] == ["+flow+extract", "+flow+transform", "+flow+load", "+flow+say"]
    extract = doc["tasks"][0]
    assert set(extract) == {"task", "backend", "note", "attempts"}
    assert extract["backend"] == "local" and extract["note"] == ""
    assert [a["backend"] for a in extract["attempts"] if a["chosen"]] == ["local"]
    assert all(set(a) == {"backend", "chosen", "reasons"} and a["reasons"] for a in extract["attempts"])
    say = doc["tasks"][3]
    assert say["backend"] is None and say["attempts"] == [] and "engine" in say["note"]

    _, out, _ = offload(capsys, "explain", flow)
    lines = out.splitlines()
    assert lines[0] == f"workflow flow ({flow}); config {doc['config']}; backends: {' -> '.join(doc['backends'])}"
    assert "+flow+extract: runs on local" in lines
    assert f"+flow+say: {say['note']}" in lines
    for attempt in extract["attempts"]:
        mark = "chosen" if attempt["chosen"] else "skipped"
        assert f"    {attempt['backend']:<8} {mark}: {'; '.join(attempt['reasons'])}" in lines


def test_explain_json_notes_an_unused_section_and_a_forced_backend(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "offload.yml").write_text("command_executor:\n  type: local\n  docker:\n    init: true\n")
    doc = as_json(capsys, "explain", str(project / "flow.dig"))
    assert doc["backends"] == ["local"] and doc["config"].endswith("offload.yml")
    assert doc["notes"] == ["command_executor.docker is configured but not used: set command_executor.type: docker, or list it in command_executor.order"]
    _, out, _ = offload(capsys, "explain", str(project / "flow.dig"))
    assert f"note: {doc['notes'][0]}" in out.splitlines()


def test_explain_json_of_a_broken_workflow_is_exit_2_and_nothing_on_stdout(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flow.dig").write_text("+a:\n  sh>: echo ${nope}\n")
    code, out, err = offload(capsys, "explain", str(project / "flow.dig"), "--json")
    assert (code, out) == (2, "")
    assert "unknown param 'nope'" in err
