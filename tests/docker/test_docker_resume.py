"""A driver killed at the awkward moments: while an image builds, between creating a
container and starting it. The next run picks the task up and runs it exactly once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.api.container
import docker.errors
import pytest

import offload
from offload import TaskState
from offload.testing import make_request, wait_for
from offload_docker.logs import parse_timestamp_ns

Make = Callable[..., offload.Executor]


def cli(project: Path, *args: str, prelude: str = "", timeout: float = 120) -> subprocess.Popen[str]:
    """``offload <args>`` in its own session, after running ``prelude`` in the same process."""
    code = f"import sys\n{prelude}\nfrom offload.workflow.cli import main\nsys.exit(main({list(args)!r}))\n"
    driver = subprocess.Popen(
        [sys.executable, "-c", code], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    timer = threading.Timer(timeout, lambda: _kill(driver))  # a hung run fails the test, never the suite
    timer.daemon = True
    timer.start()
    driver.timer = timer  # type: ignore[attr-defined]
    return driver


def _kill(driver: subprocess.Popen[str]) -> None:
    try:
        os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def finish(driver: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = driver.communicate()
    driver.timer.cancel()  # type: ignore[attr-defined]
    assert driver.returncode != -signal.SIGKILL, f"the run hung and was killed:\n{out}\n{err}"
    return driver.returncode, out, err


def containers_of(engine: docker.DockerClient, project: Path) -> list[Any]:
    # One list call: the SDK's containers.list() inspects each container it lists, and a
    # container whose create was cut short by the killed driver may be gone by then.
    found: list[Any] = engine.api.containers(all=True, filters={"label": f"offload.project={project}"})
    return found


# The driver dies inside submit, after the container was created, before it was started.
DIE_AT_START = """
import os, docker.api.container
def die(*args, **kwargs):
    os._exit(9)
docker.api.container.ContainerApiMixin.start = die
"""

ONCE_FLOW = """
+once:
  docker:
    image: {image}
  timeout: {timeout}
  sh>: echo ran >> ran.txt; {command}
"""


def test_a_container_created_but_never_started_is_started_on_resume_and_runs_once(tmp_path: Path, image: str, engine: docker.DockerClient) -> None:
    (tmp_path / "flow.dig").write_text(ONCE_FLOW.format(image=image, timeout=600, command="echo finished-once"))
    code, out, err = finish(cli(tmp_path, "run", "flow.dig", prelude=DIE_AT_START))
    assert code == 9, out + err
    (created,) = containers_of(engine, tmp_path)
    assert created["State"] == "created"
    code, out, err = finish(cli(tmp_path, "run", "flow.dig"))
    assert code == 0, out + err
    assert "finished-once" in out
    assert (tmp_path / "ran.txt").read_text() == "ran\n", "the task ran exactly once"
    assert containers_of(engine, tmp_path) == []


def test_the_timeout_of_a_task_started_on_resume_is_enforced(tmp_path: Path, image: str, engine: docker.DockerClient) -> None:
    (tmp_path / "flow.dig").write_text(ONCE_FLOW.format(image=image, timeout=2, command="sleep 600"))
    code, out, err = finish(cli(tmp_path, "run", "flow.dig", prelude=DIE_AT_START))
    assert code == 9, out + err
    code, out, err = finish(cli(tmp_path, "run", "flow.dig"), )
    assert code == 1, out + err
    assert "timed out after 2 s" in err
    assert (tmp_path / "ran.txt").read_text() == "ran\n"


# The driver dies in a start worker at the fourth start, while other workers create or
# start containers and other tasks wait in the queue.
DIE_AT_FOURTH_START = """
import os, threading, docker.api.container
real_start = docker.api.container.ContainerApiMixin.start
count, lock = [0], threading.Lock()
def start(self, *args, **kwargs):
    with lock:
        count[0] += 1
        n = count[0]
    if n == 4:
        os._exit(9)
    return real_start(self, *args, **kwargs)
docker.api.container.ContainerApiMixin.start = start
"""

PARALLEL_FLOW = """
_export:
  docker:
    image: {image}
+group:
  _parallel: true
{tasks}
"""


def test_a_driver_killed_during_concurrent_starts_resumes_and_runs_every_task_once(tmp_path: Path, image: str, engine: docker.DockerClient) -> None:
    names = [f"t{i}" for i in range(12)]
    tasks = "".join(f"  +{name}:\n    sh>: echo {name} >> ran.txt; sleep 2; echo finished-{name}\n" for name in names)
    (tmp_path / "flow.dig").write_text(PARALLEL_FLOW.format(image=image, tasks=tasks))
    code, out, err = finish(cli(tmp_path, "run", "flow.dig", prelude=DIE_AT_FOURTH_START))
    assert code == 9, out + err
    left = containers_of(engine, tmp_path)
    assert 3 <= len(left) < len(names), "killed with some containers started and some tasks not"
    code, out, err = finish(cli(tmp_path, "run", "flow.dig"))
    assert code == 0, out + err
    assert sorted((tmp_path / "ran.txt").read_text().split()) == sorted(names), "every task ran exactly once"
    assert sorted(line.split()[-1] for line in out.splitlines() if "finished-" in line) == sorted(f"finished-{name}" for name in names)
    assert containers_of(engine, tmp_path) == []


BUILD_FLOW = """
+built:
  docker:
    image: {image}
    build: ["sleep 3; echo {marker} > /built-marker"]
  sh>: echo ran >> ran.txt; cat /built-marker
"""


# Counts the docker sections parsed in the driver, printed to stderr as it exits.
COUNT_PARSES = """
import atexit, sys
from offload_docker.backend import DockerBackend
parsed = []
parse = DockerBackend.parse_task_config
def counted(self, sections, where):
    parsed.append(where)
    return parse(self, sections, where)
DockerBackend.parse_task_config = counted
atexit.register(lambda: print("parsed:", " | ".join(parsed), file=sys.stderr))
"""


@pytest.fixture
def build_marker(engine: docker.DockerClient, image: str) -> Iterator[str]:
    """A build step unique to the test; its image is removed afterwards."""
    marker = uuid.uuid4().hex
    yield marker
    spec = offload.ImageSpec(image=image, build=(f"sleep 3; echo {marker} > /built-marker",))
    try:
        engine.images.remove(offload.image_tag(spec, offload.default_dockerfile(spec)), force=True)
    except docker.errors.ImageNotFound:
        pass


def test_a_driver_killed_while_the_image_builds_builds_it_again_and_runs_the_task_once(
    tmp_path: Path, image: str, engine: docker.DockerClient, build_marker: str
) -> None:
    (tmp_path / "flow.dig").write_text(BUILD_FLOW.format(image=image, marker=build_marker))
    driver = cli(tmp_path, "run", "flow.dig")
    assert driver.stdout is not None
    for line in driver.stdout:  # the build's log reaches the console as it happens
        if "RUN sleep 3" in line:
            break
    else:
        pytest.fail(f"the build never started: {finish(driver)}")
    os.killpg(driver.pid, signal.SIGKILL)
    finish_killed = driver.wait()
    driver.timer.cancel()  # type: ignore[attr-defined]
    assert finish_killed == -signal.SIGKILL
    assert containers_of(engine, tmp_path) == [], "killed before any container was made"
    code, out, err = finish(cli(tmp_path, "run", "flow.dig", prelude=COUNT_PARSES))
    assert code == 0, out + err
    assert "re-attached" in err
    assert build_marker in out, "the task ran in the image it asked for"
    (parsed,) = [line.removeprefix("parsed: ").split(" | ") for line in err.splitlines() if line.startswith("parsed: ")]
    kept = [where for where in parsed if where != "task +flow+built"]  # the run's check of the workflow, before anything runs
    assert len(kept) == 1 and kept[0].endswith(".built.1"), ("the kept request is parsed once", parsed)
    assert (tmp_path / "ran.txt").read_text() == "ran\n", "the task ran exactly once"
    assert containers_of(engine, tmp_path) == []
    kept = list((tmp_path / ".offload").rglob("*.request.json"))
    assert kept == [], "the kept request is gone once the container started"


def _earlier(stamp: str, ns: int) -> str:
    at = parse_timestamp_ns(stamp) - ns
    seconds = dt.datetime.fromtimestamp(at // 1_000_000_000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{seconds}.{at % 1_000_000_000:09d}Z"


def test_a_finish_the_engine_reports_before_the_start_never_makes_a_negative_duration(
    docker_executor: Make, project: Path, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inspect = docker.api.container.ContainerApiMixin.inspect_container

    def skewed(self: Any, container: Any) -> Any:  # the engine's two clocks, 1 ms apart
        info = inspect(self, container)
        state = info["State"]
        if state.get("Status") == "exited":
            state["FinishedAt"] = _earlier(state["StartedAt"], 1_000_000)
        return info

    monkeypatch.setattr(docker.api.container.ContainerApiMixin, "inspect_container", skewed)
    executor = docker_executor()
    result, _ = wait_for(executor, executor.submit(make_request(project, "echo quick", {"docker": {"image": image}}), backend="docker"))
    assert result.state is TaskState.SUCCEEDED
    assert result.started_at is not None and result.finished_at is not None
    assert result.finished_at >= result.started_at
    assert result.duration is not None and result.duration >= 0
