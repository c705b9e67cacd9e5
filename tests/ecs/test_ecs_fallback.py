"""``command_executor.type: ecs`` with ECS configured: a task ECS is not configured for (no
``ecs.task_definition_arn``, no ``docker.image``; or an image to build) goes where Digdag's
ECS executor hands it, Docker and then local, and ``offload explain`` says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from ecs_harness.world import IMAGE, World

FLOW = f"""+plain:
  sh>: echo ran here > plain.txt
+on_ecs:
  docker:
    image: {IMAGE}
  sh>: echo on ecs
+to_build:
  docker:
    image: {IMAGE}
    build: [echo built]
  sh>: echo built
"""


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OFFLOAD_EXECUTOR": ""}
    return subprocess.run([sys.executable, "-m", "offload", *args], cwd=project, capture_output=True, text=True, timeout=180, env=env)


def test_a_task_ecs_is_not_configured_for_falls_back_as_in_digdag(world: World, project: Path) -> None:
    (project / "flow.dig").write_text(FLOW)
    (project / "offload.yml").write_text(yaml.safe_dump(world.config()))
    done = cli(project, "explain", "flow.dig")
    assert done.returncode == 0, done.stderr
    fallback = "command_executor.type is ecs, but ecs is not configured for this task: falls back to {}, as in Digdag"
    assert done.stdout.splitlines()[1:] == [
        "+flow+plain: runs on local",
        "    ecs      skipped: task +flow+plain: sets neither ecs.task_definition_arn nor docker.image",
        "    docker   skipped: task +flow+plain: docker: not configured for this task (no docker: keys)",
        "    local    chosen: " + fallback.format("local"),
        "+flow+on_ecs: runs on ecs",
        "    ecs      chosen: forced by command_executor.type: ecs",
        "+flow+to_build: runs on docker",
        "    ecs      skipped: task +flow+to_build: docker.build: ECS cannot build images: the task's docker.build needs the docker backend"
        " (or set ecs.task_definition_arn)",
        "    docker   chosen: " + fallback.format("docker"),
    ]

    (project / "flow.dig").write_text(FLOW.split("+to_build")[0])
    started = len(world.agent.started)
    done = cli(project, "run", "flow.dig")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "+flow+plain: started on local" in done.stderr and "+flow+on_ecs: started on ecs" in done.stderr
    assert (project / "plain.txt").read_text() == "ran here\n"
    assert "[+flow+on_ecs] on ecs" in done.stdout
    assert len(world.agent.started) == started + 1, "one task on ECS"
