"""The real ``offload`` CLI, killed and interrupted in the middle of a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offload.testing import wait_for_line

OFFLOAD = [sys.executable, "-m", "offload.workflow.cli"]

FLOW = """\
+first:
  sh>: echo first >> runs.log
+slow:
  sh>: |
    echo slow-started >> runs.log
    echo slow is running
    while [ ! -f release ]; do sleep 0.1; done
    echo slow >> runs.log
    echo '{"store_params": {"token": "from-slow"}}' > "$OFFLOAD_IO_DIR/output.json"
+last:
  sh>: echo "last ${token}" >> runs.log
"""


def start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*OFFLOAD, "run", "flow.dig", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OFFLOAD_DISABLE_PLUGINS": "docker ecs"},
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.dig").write_text(FLOW)
    return tmp_path


def test_sigkill_then_run_again_reattaches_and_runs_nothing_twice(project: Path) -> None:
    driver = start(project)
    wait_for_line(driver, "slow is running")
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    assert (project / "runs.log").read_text().splitlines() == ["first", "slow-started"]

    (project / "release").write_text("")  # the task outlived its driver and can finish now
    again = subprocess.run([*OFFLOAD, "run", "flow.dig"], cwd=project, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "+flow+first: skipped" in again.stderr
    assert "+flow+slow: re-attached" in again.stderr
    # every task ran exactly once, and the re-attached task's output params reached the next one
    assert (project / "runs.log").read_text().splitlines() == ["first", "slow-started", "slow", "last from-slow"]
    assert "+flow+slow  " in again.stdout and "succeeded" in again.stdout


def test_a_finished_run_starts_afresh_and_rerun_forces_a_new_run(project: Path) -> None:
    (project / "release").write_text("")
    first = subprocess.run([*OFFLOAD, "run", "flow.dig"], cwd=project, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([*OFFLOAD, "run", "--rerun", "flow.dig"], cwd=project, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "skipped" not in second.stderr
    assert (project / "runs.log").read_text().count("first") == 2


def test_a_failed_run_resumes_from_the_failed_task(project: Path) -> None:
    (project / "flow.dig").write_text("+ok:\n  sh>: echo ok >> runs.log\n+flaky:\n  sh>: test -f fixed && echo flaky >> runs.log\n")
    failed = subprocess.run([*OFFLOAD, "run", "flow.dig"], cwd=project, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    (project / "fixed").write_text("")
    resumed = subprocess.run([*OFFLOAD, "run", "flow.dig"], cwd=project, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert (project / "runs.log").read_text().splitlines() == ["ok", "flaky"]


def test_ctrl_c_cancels_every_running_task_and_leaves_no_process(project: Path) -> None:
    (project / "flow.dig").write_text(
        "+group:\n  _parallel: true\n"
        "  +a:\n    sh>: echo $$ > a.pid; echo a-running; sleep 300\n"
        "  +b:\n    sh>: echo $$ > b.pid; echo b-running; sleep 300\n"
        "+never:\n  sh>: echo never >> runs.log\n"
    )
    driver = start(project)
    wait_for_line(driver, "-running")
    deadline = time.monotonic() + 30
    while not all((project / f"{name}.pid").exists() for name in ("a", "b")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the pid files are written; let the shells start their sleep
    pids = [int((project / f"{name}.pid").read_text()) for name in ("a", "b")]
    assert all(pid_alive(pid) for pid in pids)
    driver.send_signal(signal.SIGINT)
    output, _ = driver.communicate(timeout=60)
    assert driver.returncode == 130, output
    assert "cancelled" in output
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(pid) for pid in pids), "a task's process outlived the cancelled run"
    assert not (project / "runs.log").exists()
