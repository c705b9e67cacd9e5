"""``command_executor.type`` as Digdag reads it, through the CLI: ``simple`` is the local
backend, and with a type forced, a task that backend is not configured for goes where
Digdag's executor hands it (Docker and any other backend to local, ECS to Docker and then
local), while a wrong task config still stops the run. ``offload explain`` says why."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

from offload.workflow.cli import main

LOCAL_TASK = "+a:\n  sh>: echo ran here > a.txt\n"
DOCKER_TASK = "+b:\n  docker:\n    image: debian:12\n  sh>: echo b\n"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OFFLOAD_EXECUTOR", "OFFLOAD_CONFIG", "OFFLOAD_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def without(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """As if the distribution of backend ``name`` were not installed."""
    real = importlib.metadata.entry_points

    def entry_points(**kwargs: Any) -> Any:
        found: Any = real(**kwargs)
        return [ep for ep in found if ep.name != name]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def project(tmp_path: Path, flow: str, config: str | None = None, name: str = "offload.yml") -> Path:
    (tmp_path / "flow.dig").write_text(flow)
    if config is not None:
        (tmp_path / name).write_text(config)
    return tmp_path / "flow.dig"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def explained(capsys: pytest.CaptureFixture[str], flow: Path, *args: str) -> list[str]:
    code, out, err = cli(capsys, "explain", str(flow), *args)
    assert code == 0, err
    return out.splitlines()


# --- simple is local --------------------------------------------------------------------

SIMPLE = "forced by command_executor.type: simple (Digdag's name for local)"


@pytest.mark.parametrize(
    ("config", "name"),
    [("command_executor:\n  type: simple\n", "offload.yml"), ("agent.command_executor.type = simple\n", "digdag.properties")],
)
def test_type_simple_runs_every_task_locally(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, name: str) -> None:
    flow = project(tmp_path, LOCAL_TASK + DOCKER_TASK, config, name)
    lines = explained(capsys, flow, "-c", str(tmp_path / name))
    assert lines[1:] == ["+flow+a: runs on local", f"    local    chosen: {SIMPLE}", "+flow+b: runs on local", f"    local    chosen: {SIMPLE}"]
    code, out, err = cli(capsys, "run", str(flow), "-c", str(tmp_path / name))
    assert code == 0, err
    assert (tmp_path / "a.txt").read_text() == "ran here\n"
    assert "[+flow+b] b" in out


def test_offload_executor_simple_is_local_too(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "simple")
    flow = project(tmp_path, LOCAL_TASK, "command_executor:\n  type: docker\n")
    assert explained(capsys, flow)[1:] == ["+flow+a: runs on local", f"    local    chosen: {SIMPLE}"]


def test_simple_in_the_order_is_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = project(tmp_path, LOCAL_TASK, "command_executor:\n  order: [docker, simple]\n")
    lines = explained(capsys, flow)
    assert lines[0].endswith("backends: docker -> local")
    assert lines[1:] == [
        "+flow+a: runs on local",
        "    docker   skipped: task +flow+a: docker: not configured for this task (no docker: keys)",
        "    local    chosen: configured for this task",
    ]


# --- a forced type falls back as Digdag's executors do -------------------------------------


def test_type_docker_runs_a_task_without_docker_config_locally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = project(tmp_path, LOCAL_TASK + DOCKER_TASK, "command_executor:\n  type: docker\n")
    assert explained(capsys, flow)[1:] == [
        "+flow+a: runs on local",
        "    docker   skipped: task +flow+a: docker: not configured for this task (no docker: keys)",
        "    local    chosen: command_executor.type is docker, but docker is not configured for this task: falls back to local, as in Digdag",
        "+flow+b: runs on docker",
        "    docker   chosen: forced by command_executor.type: docker",
    ]
    project(tmp_path, LOCAL_TASK)
    code, _, err = cli(capsys, "run", str(flow))
    assert code == 0, err
    assert (tmp_path / "a.txt").read_text() == "ran here\n", "it ran in this project, on this machine"
    assert "+flow+a: started on local" in err


def test_type_ecs_hands_a_task_to_docker_then_to_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ECS is not configured here at all: Digdag's ECS executor gives every task to its Docker one."""
    flow = project(tmp_path, LOCAL_TASK + DOCKER_TASK, "command_executor:\n  type: ecs\n")
    lines = explained(capsys, flow)
    ecs = "    ecs      skipped: command_executor.ecs: not configured (the system config has no ecs section with name and temporal_storage)"
    fallback = "command_executor.type is ecs, but ecs is not configured for this task: falls back to {}, as in Digdag"
    assert lines[1:] == [
        "+flow+a: runs on local",
        ecs,
        "    docker   skipped: task +flow+a: docker: not configured for this task (no docker: keys)",
        "    local    chosen: " + fallback.format("local"),
        "+flow+b: runs on docker",
        ecs,
        "    docker   chosen: " + fallback.format("docker"),
    ]
    project(tmp_path, LOCAL_TASK)
    code, _, err = cli(capsys, "run", str(flow))
    assert code == 0, err
    assert (tmp_path / "a.txt").read_text() == "ran here\n"


def test_a_wrong_task_config_of_the_forced_backend_still_stops_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = project(tmp_path, "+a:\n  docker:\n    image: debian:12\n    selinux: maybe\n  sh>: echo ran > a.txt\n", "command_executor:\n  type: docker\n")
    code, _, err = cli(capsys, "run", str(flow))
    assert code == 2
    assert "flow.dig: +flow+a: docker.selinux: must be true, false, z or Z, got 'maybe'" in err
    assert not (tmp_path / "a.txt").exists(), "nothing ran, not even locally"


def test_a_forced_backend_that_is_not_installed_is_an_error_not_a_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    without(monkeypatch, "docker")
    flow = project(tmp_path, LOCAL_TASK, "command_executor:\n  type: docker\n")
    code, _, err = cli(capsys, "run", str(flow))
    assert code == 2
    assert "no backend can run this task (docker: not installed (pip install offload-docker))" in err
    assert not (tmp_path / "a.txt").exists()


def test_a_task_for_a_missing_backend_on_the_way_is_not_run_locally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", "docker")
    flow = project(tmp_path, DOCKER_TASK, "command_executor:\n  type: ecs\n")
    code, _, err = cli(capsys, "explain", str(flow))
    assert code == 2
    assert "flow.dig: +flow+b: docker: set for this task, but the docker backend is disabled by OFFLOAD_DISABLE_PLUGINS; local would ignore it" in err


def test_the_sections_of_backends_off_the_way_are_ignored_as_with_any_forced_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    without(monkeypatch, "kubernetes")
    flow = project(tmp_path, "+a:\n  kubernetes: {namespace: batch}\n  sh>: echo ran here > a.txt\n", "command_executor:\n  type: docker\n")
    code, _, err = cli(capsys, "run", str(flow))
    assert code == 0, err
    assert (tmp_path / "a.txt").read_text() == "ran here\n"


def test_check_takes_digdags_name_for_the_local_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "simple"]) == 0
    assert capsys.readouterr().out.startswith("ok   local: ready")


def test_explain_does_not_call_the_backend_a_forced_type_hands_tasks_to_unused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project(tmp_path, LOCAL_TASK, "command_executor:\n  type: docker\n  local:\n    shell: /bin/sh\n")
    assert main(["explain", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "command_executor.local is configured but not used" not in out
    assert "+flow+a: runs on local" in out
