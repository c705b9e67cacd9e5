"""One driver per workflow and project: a second ``offload run`` never joins a live run."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from test_cli_crash_resume import FLOW, OFFLOAD, start

from offload.testing import wait_for_line


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.dig").write_text(FLOW)
    return tmp_path


def run_cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OFFLOAD, "run", "flow.dig", *args], cwd=project, capture_output=True, text=True, timeout=120)


def test_a_second_driver_is_refused_with_the_running_pid_and_runs_nothing(project: Path) -> None:
    first = start(project)
    wait_for_line(first, "slow is running")
    second = run_cli(project)
    assert second.returncode == 2, second.stderr
    assert f"another offload run is driving this workflow in this project (pid {first.pid}" in second.stderr
    assert "--wait" in second.stderr
    assert "Traceback" not in second.stderr
    (project / "release").write_text("")
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    assert (project / "runs.log").read_text().splitlines() == ["first", "slow-started", "slow", "last from-slow"]


def test_two_drivers_started_together_run_every_task_once(project: Path) -> None:
    (project / "release").write_text("")
    drivers = [start(project), start(project)]
    outputs = [d.communicate(timeout=120)[0] for d in drivers]
    codes = sorted(d.returncode for d in drivers)
    # both may succeed one after the other (the second then starts a new run); never together
    runs = (project / "runs.log").read_text().splitlines()
    if codes == [0, 2]:
        assert runs == ["first", "slow-started", "slow", "last from-slow"], outputs
    else:
        assert codes == [0, 0], outputs
        assert runs == ["first", "slow-started", "slow", "last from-slow"] * 2, outputs


def test_wait_waits_for_the_running_driver_then_runs(project: Path) -> None:
    first = start(project)
    wait_for_line(first, "slow is running")
    second = start(project, "--wait")
    wait_for_line(second, "waiting for the other offload run of this workflow to end")
    (project / "release").write_text("")
    first.communicate(timeout=120)
    output, _ = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, output
    assert (project / "runs.log").read_text().splitlines() == ["first", "slow-started", "slow", "last from-slow"] * 2


def test_the_lock_of_a_killed_driver_is_taken_over(project: Path) -> None:
    first = start(project)
    wait_for_line(first, "slow is running")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    (project / "release").write_text("")
    again = run_cli(project)
    assert again.returncode == 0, again.stderr
    assert "+flow+slow: re-attached" in again.stderr


def test_other_workflows_of_the_project_run_meanwhile(project: Path) -> None:
    (project / "other.dig").write_text("+x:\n  sh>: echo other >> other.log\n")
    first = start(project)
    wait_for_line(first, "slow is running")
    other = subprocess.run([*OFFLOAD, "run", "other.dig"], cwd=project, capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    (project / "release").write_text("")
    first.communicate(timeout=120)
    assert first.returncode == 0
