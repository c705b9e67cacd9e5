"""Try the ECS backend on this machine, without an AWS account:

    .venv/bin/python examples/ecs/try_with_moto.py [--container]

It starts a moto server on 127.0.0.1 and the test agent that plays ECS (from
tests/ecs/ecs_harness), registers a task definition tagged with the workflow's image,
runs ``offload run flow.dig`` against them, then shows with ``offload explain`` that
without the ECS section the same workflow would run in Docker, and why. Every AWS call
goes to 127.0.0.1. ``--container`` runs the tasks in real containers of the offline
test image (after ``bash scripts/setup_docker.sh``) instead of local processes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ecs"))

os.environ.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)

from ecs_harness.server import MotoServer  # noqa: E402
from ecs_harness.world import World  # noqa: E402


def offload(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "offload.workflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    print(f"$ offload {' '.join(args)}\n{proc.stdout}{proc.stderr}", flush=True)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--container", action="store_true", help="run tasks in containers of $OFFLOAD_TEST_IMAGE")
    args = parser.parse_args()
    server = MotoServer()
    server.start()
    world = World(server)
    image = "python:3.12-slim"
    if args.container:
        world.agent.mode = "container"
        world.agent.image = os.environ.get("OFFLOAD_TEST_IMAGE", "offload-test-base:bookworm")
    world.register(image, family="offload-python")
    world.agent.start()
    try:
        with tempfile.TemporaryDirectory(prefix="offload-ecs-try-") as tmp:
            project = Path(tmp) / "ecs"
            shutil.copytree(HERE, project, ignore=shutil.ignore_patterns(".offload", "__pycache__", "offload.yml", "*.py"))
            shutil.copytree(HERE / "tasks", project / "tasks", dirs_exist_ok=True)
            with_ecs = Path(tmp) / "with-ecs.yml"
            with_ecs.write_text(yaml.safe_dump({"command_executor": {"ecs": world.section()}}))
            without_ecs = Path(tmp) / "without-ecs.yml"
            without_ecs.write_text(yaml.safe_dump({"command_executor": {"docker": {}}}))
            run = offload("run", "flow.dig", "-c", str(with_ecs), cwd=project)
            offload("explain", "flow.dig", "-c", str(with_ecs), cwd=project)
            offload("explain", "flow.dig", "-c", str(without_ecs), cwd=project)
            return run.returncode
    finally:
        world.agent.stop()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
