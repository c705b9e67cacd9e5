"""End to end, as a user runs it: ``offload run`` of the ECS example workflow through the
CLI against the moto server, with the agent running each task in a real container of
the offline test image. Then the same workflow without the ECS section: ``offload
explain`` says why ECS is skipped, and the workflow runs in Docker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ecs_harness.world import IMAGE, World

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ecs"


def _docker_ready() -> bool:
    try:
        import docker

        client = docker.from_env()
        try:
            return bool(client.ping()) and bool(client.images.list(name=IMAGE))
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means no engine or no image here
        return False


pytestmark = pytest.mark.skipif(not _docker_ready(), reason=f"needs a Docker Engine with {IMAGE} (bash scripts/setup_docker.sh)")


@pytest.fixture
def containers(world: World) -> Iterator[World]:
    world.agent.mode = "container"
    world.agent.image = None  # the image of the task definition, as ECS does
    yield world
    world.agent.mode = "process"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    project = tmp_path / "ecs"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".offload", "__pycache__", "offload.yml", "*.py"))
    shutil.copytree(EXAMPLE / "tasks", project / "tasks", dirs_exist_ok=True)
    flow = (project / "flow.dig").read_text().replace("python:3.12-slim", IMAGE)
    flow += '\n+where:\n  sh>: test -f /.dockerenv && echo "ran in a container"\n'
    (project / "flow.dig").write_text(flow)
    return project


def offload(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offload.workflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=dict(os.environ))


def test_the_example_workflow_runs_on_ecs_then_in_docker_without_the_ecs_section(containers: World, example: Path, tmp_path: Path) -> None:
    with_ecs = tmp_path / "with-ecs.yml"
    with_ecs.write_text(yaml.safe_dump({"command_executor": {"ecs": containers.section(), "docker": {}}}))
    started = len(containers.agent.started)
    run = offload("run", "flow.dig", "-c", str(with_ecs), cwd=example)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[+flow+hello] hello from" in run.stdout and "for Lisbon" in run.stdout
    assert "[+flow+report] Lisbon, 3 days, warmest 24 C" in run.stdout
    assert "[+flow+where] ran in a container" in run.stdout
    for task in ("+flow+hello", "+flow+forecast", "+flow+report", "+flow+where"):
        assert any(line.startswith(task) and " ecs " in line and "succeeded" in line for line in run.stdout.splitlines()), run.stdout
    assert len(containers.agent.started) - started == 4

    without_ecs = tmp_path / "without-ecs.yml"
    without_ecs.write_text(yaml.safe_dump({"command_executor": {"docker": {}}}))
    explain = offload("explain", "flow.dig", "-c", str(without_ecs), cwd=example)
    assert explain.returncode == 0, explain.stderr
    assert "+flow+hello: runs on docker" in explain.stdout
    assert "ecs      skipped: command_executor.ecs: not configured" in explain.stdout

    rerun = offload("run", "flow.dig", "-c", str(without_ecs), "--rerun", cwd=example)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "[+flow+report] Lisbon, 3 days, warmest 24 C" in rerun.stdout
    for task in ("+flow+hello", "+flow+forecast", "+flow+report", "+flow+where"):
        assert any(line.startswith(task) and " docker " in line and "succeeded" in line for line in rerun.stdout.splitlines()), rerun.stdout
    assert len(containers.agent.started) - started == 4  # nothing more went to ECS
