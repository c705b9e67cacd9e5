"""examples/docker.dig and the CLI, run as a user runs them: ``offload ...`` in a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def offload_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offload.workflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def example(tmp_path: Path, engine: docker.DockerClient, image: str) -> Path:
    """A copy of the example project, with the test image as its base image."""
    shutil.copy(EXAMPLES / "docker.dig", tmp_path / "docker.dig")
    shutil.copytree(EXAMPLES / "docker_tasks", tmp_path / "docker_tasks")
    flow = tmp_path / "docker.dig"
    flow.write_text(flow.read_text().replace("image: offload-test-base:bookworm", f"image: {image}"))
    return tmp_path


def test_the_example_runs_builds_once_and_passes_output_params_on(example: Path) -> None:
    first = offload_cli("run", "docker.dig", cwd=example)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Hello: 3 numbers adding up to 16, computed in built into the image" in first.stdout
    second = offload_cli("run", "--rerun", "docker.dig", cwd=example)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "building image" not in second.stdout, "the image with the same spec is reused"
    assert "adding up to 16" in second.stdout


def test_an_unknown_run_option_exits_2_naming_the_task_and_flag(example: Path, engine: docker.DockerClient) -> None:
    flow = example / "docker.dig"
    flow.write_text(flow.read_text().replace('run_options: [ "-m", "256m", "--cpus", "1" ]', 'run_options: [ "--rm" ]'))
    done = offload_cli("run", "docker.dig", cwd=example)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "docker.run_options: unknown run option '--rm' (supported: -m/--memory" in done.stderr
    assert "Traceback" not in done.stderr
    assert engine.containers.list(all=True, filters={"label": f"offload.project={example}"}) == [], "nothing was launched"


SLOW_FLOW = """
_export:
  docker:
    image: {image}
+slow:
  sh>: echo begun; sleep 6; echo finished; exit 3
"""


def test_killing_the_driver_mid_container_then_running_again_collects_the_real_result(tmp_path: Path, image: str, engine: docker.DockerClient) -> None:
    (tmp_path / "slow.dig").write_text(SLOW_FLOW.format(image=image))
    driver = subprocess.Popen(
        [sys.executable, "-m", "offload.workflow.cli", "run", "slow.dig"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not engine.containers.list(filters={"label": f"offload.project={tmp_path}", "status": "running"}):
        assert time.monotonic() < deadline and driver.poll() is None, "the container never started"
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    again = offload_cli("run", "slow.dig", cwd=tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "re-attached" in again.stderr + again.stdout
    assert "Command failed with code 3" in again.stderr + again.stdout  # the real exit code, in Digdag's words
    assert "finished" in again.stdout, "the container's log after the restart reached the new driver"
    assert engine.containers.list(all=True, filters={"label": f"offload.project={tmp_path}"}) == []


def test_check_docker_reports_the_engine(tmp_path: Path, engine: docker.DockerClient) -> None:
    done = offload_cli("check", "docker", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"ok   docker: engine {engine.version()['Version']} answers at ")


def test_check_docker_fails_when_the_engine_does_not_answer(tmp_path: Path, engine: docker.DockerClient) -> None:
    (tmp_path / "offload.yml").write_text(f"command_executor:\n  docker:\n    host: unix://{tmp_path}/none.sock\n")
    done = offload_cli("check", "docker", cwd=tmp_path)
    assert done.returncode == 1
    assert "FAIL docker: the Docker Engine at unix://" in done.stdout
