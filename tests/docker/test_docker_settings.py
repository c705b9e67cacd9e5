"""A task's ``docker:`` section is parsed once, by selection, and reaches the backend as
``request.settings``."""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import offload
from offload.testing import make_request, wait_for
from offload_docker.backend import DockerBackend
from offload_docker.config import TaskSettings

Make = Callable[..., offload.Executor]


class Calls:
    """Counts ``DockerBackend.parse_task_config`` and records what ``submit`` received."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parsed: list[str] = []
        self.submitted: list[offload.TaskRequest] = []
        parse, submit = DockerBackend.parse_task_config, DockerBackend.submit

        def counted_parse(backend: DockerBackend, sections: Mapping[str, Any], where: str) -> tuple[TaskSettings | None, list[offload.Problem]]:
            self.parsed.append(where)
            return parse(backend, sections, where)

        def recorded_submit(backend: DockerBackend, request: offload.TaskRequest) -> offload.Handle:
            self.submitted.append(request)
            return submit(backend, request)

        monkeypatch.setattr(DockerBackend, "parse_task_config", counted_parse)
        monkeypatch.setattr(DockerBackend, "submit", recorded_submit)

    def of(self, task_id: str) -> int:
        return self.parsed.count(f"task {task_id}")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    return Calls(monkeypatch)


@pytest.mark.parametrize("how", ["selected by submit", "selection handed to submit", "backend named"])
def test_submitting_one_task_parses_its_docker_section_once(how: str, calls: Calls, docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    request = make_request(project, "echo once", {"docker": {"image": image}})
    if how == "selected by submit":
        handle = executor.submit(request)
    elif how == "selection handed to submit":
        handle = executor.submit(request, executor.select(request))
    else:
        handle = executor.submit(request, "docker")
    result, logs = wait_for(executor, handle)
    assert result.ok and logs == ["once"]
    assert calls.parsed == [f"task {request.task_id}"]
    (submitted,) = calls.submitted
    assert isinstance(submitted.settings, TaskSettings) and submitted.settings.image == image


def test_adopting_then_submitting_parses_once(calls: Calls, docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    request = make_request(project, "echo adopted", {"docker": {"image": image}})
    selection = executor.select(request)
    assert executor.adopt(request, selection) is None, "nothing was started for it yet"
    result, logs = wait_for(executor, executor.submit(request, selection))
    assert result.ok and logs == ["adopted"]
    assert calls.parsed == [f"task {request.task_id}"]


FLOW = """
_export:
  docker:
    image: {image}
    run_options: ["-m", "256m"]

+hello:
  sh>: echo hello from docker
"""


def test_running_a_workflow_task_parses_its_docker_section_once(calls: Calls, tmp_path: Path, engine: Any, image: str) -> None:
    (tmp_path / "flow.dig").write_text(FLOW.format(image=image))
    lines: list[str] = []
    with offload.Executor({"command_executor": {"order": ["docker", "local"]}}) as executor:
        outcome = offload.run_workflow(str(tmp_path / "flow.dig"), executor, on_log=lambda task, line: lines.append(line))
    assert outcome.state is offload.TaskState.SUCCEEDED, lines
    assert "hello from docker" in lines
    (submitted,) = calls.submitted
    assert calls.of(submitted.task_id) == 1, calls.parsed
    assert isinstance(submitted.settings, TaskSettings) and submitted.settings.run.mem_limit == 256 << 20
    # Before anything is launched, the run checks every task once with the params known
    # then (offload.workflow.plan.check_workflow); that request is another one, parsed once as well.
    assert all(n == 1 for n in collections.Counter(calls.parsed).values()), calls.parsed
    assert len(calls.parsed) <= 2, calls.parsed
