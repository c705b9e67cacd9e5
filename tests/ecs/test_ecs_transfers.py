"""Digdag's keys of the container script, as a user meets them: ``retry_task_scripts_downloads``,
``retry_task_output_uploads`` and ``enable_curl_fail_opt_on_uploads`` beside ``name`` in the
``ecs`` section. The test agent runs the real script; the S3 answers to the container's
download of its project and upload of its output fail on request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ecs_harness.world import IMAGE, World

import offload
from offload.executor.config import load_system_config
from offload.remote.script import UPLOAD_FAILED
from offload.testing import make_request, wait_for

TASK = {"docker": {"image": IMAGE}}
UNAVAILABLE = ("ServiceUnavailable", "Please reduce your request rate.")
DENIED = ("AccessDenied", "Access Denied")
FLOW = f"_export:\n  docker:\n    image: {IMAGE}\n+hello:\n  sh>: echo downloaded and ran\n"


def config(world: World, **script: Any) -> dict[str, Any]:
    """The ECS config of the harness with ``script`` keys beside ``name``, where Digdag reads them."""
    return {"command_executor": {"type": "ecs", "ecs": {**world.section(), **script}}}


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offload", *args], cwd=project, capture_output=True, text=True, timeout=180, env={**os.environ, "OFFLOAD_EXECUTOR": ""}
    )


def run_flow(world: World, project: Path, **script: Any) -> subprocess.CompletedProcess[str]:
    (project / "flow.dig").write_text(FLOW)
    (project / "offload.yml").write_text(yaml.safe_dump(config(world, **script)))
    return cli(project, "run", "flow.dig", "--rerun")


def calls(world: World, op: str, key: str) -> int:
    """How many ``op`` calls the S3 server had for objects named ``key`` (one task per test)."""
    return sum(n for (o, path), n in world.server.faults.paths.items() if o == op and path.endswith(key))


def run_task(world: World, project: Path, script: str, **settings: Any) -> tuple[offload.Result, list[str], Path]:
    """The result and log of ``script`` run on ECS, and its io directory."""
    request = make_request(project, script, TASK)
    with offload.Executor(config(world, **settings)) as executor:
        result, logs = wait_for(executor, executor.submit(request), limit=90)
    return result, logs, Path(request.io_path)


@pytest.mark.parametrize(("retries", "ok"), [(3, True), (2, False)])
def test_the_project_download_is_retried_as_configured(world: World, project: Path, retries: int, ok: bool) -> None:
    world.server.faults.add("S3:GET", 3, error=UNAVAILABLE, status="503 Service Unavailable", key="/project.tar.gz")
    done = run_flow(world, project, retry_task_scripts_downloads=retries)
    downloads = calls(world, "S3:GET", "/project.tar.gz")
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "+flow+hello: started on ecs" in done.stderr
        assert "downloaded and ran" in done.stdout
        assert downloads == 4, "three answers of 503, then the archive"
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "offload: cannot download the project archive" in done.stdout
        assert "exit code 125 (offload could not set up the task: see its log)" in done.stdout + done.stderr
        assert "downloaded and ran" not in done.stdout
        assert downloads == 3, "the first try and 2 retries, all answered 503"


@pytest.mark.parametrize(("retries", "ok"), [(2, True), (1, False)])
def test_the_output_upload_is_retried_as_configured(world: World, project: Path, retries: int, ok: bool) -> None:
    world.server.faults.add("S3:PUT", 2, error=UNAVAILABLE, status="503 Service Unavailable", key="/io.tar.gz")
    result, logs, io = run_task(world, project, 'echo sent > "$OFFLOAD_IO_DIR/out.txt"', retry_task_output_uploads=retries)
    assert result.ok is ok, (result, logs)
    assert calls(world, "S3:PUT", "/io.tar.gz") == retries + 1
    if ok:
        assert (io / "out.txt").read_text() == "sent\n"
    else:
        assert result.error is not None and "sent no output back" in result.error
        assert not (io / "out.txt").exists()


def test_with_enable_curl_fail_opt_on_uploads_an_http_error_on_the_upload_fails_the_container(world: World, project: Path) -> None:
    world.server.faults.add("S3:PUT", 1, error=DENIED, status="403 Forbidden", key="/io.tar.gz")
    result, logs, _ = run_task(world, project, "echo the command succeeded", enable_curl_fail_opt_on_uploads=True)
    assert result.state is offload.TaskState.FAILED
    assert result.exit_code == UPLOAD_FAILED
    assert result.error is not None and "its output could not be uploaded" in result.error
    assert "offload: cannot upload the output archive" in logs
    assert world.server.faults.calls["S3:PUT"] > 0


def test_without_it_curl_takes_the_error_answer_and_the_driver_fails_the_task_for_its_missing_output(world: World, project: Path) -> None:
    world.server.faults.add("S3:PUT", 1, error=DENIED, status="403 Forbidden", key="/io.tar.gz")
    result, logs, _ = run_task(world, project, "echo the command succeeded")
    assert result.state is offload.TaskState.FAILED
    assert result.exit_code == 0, "curl without --fail: the container exits with the command's code"
    assert result.error is not None and "sent no output back" in result.error
    assert any("AccessDenied" in line for line in logs), "the answer's text is in the task's log"
    assert "offload: cannot upload the output archive" not in logs


def test_a_failing_command_keeps_its_exit_code_when_the_upload_fails_too(world: World, project: Path) -> None:
    world.server.faults.add("S3:PUT", 1, error=DENIED, status="403 Forbidden", key="/io.tar.gz")
    result, _, _ = run_task(world, project, "exit 3", enable_curl_fail_opt_on_uploads="true")
    assert (result.state, result.exit_code) == (offload.TaskState.FAILED, 3)


def test_the_keys_reach_the_command_ecs_runs(world: World, project: Path) -> None:
    with offload.Executor(config(world, retry_task_scripts_downloads=0, retry_task_output_uploads=9, enable_curl_fail_opt_on_uploads=True)) as executor:
        handle = executor.submit(make_request(project, "true", TASK))
        result, _ = wait_for(executor, handle, limit=90)
    assert result.ok
    command = world.task(handle.state["task_arn"])["overrides"]["containerOverrides"][0]["command"][2]
    assert " project.tgz 0 || " in command
    assert "/io.tar.gz" in command and " 9 -f || " in command


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ({"retry_task_scripts_downloads": "many"}, "offload.yml: command_executor.ecs.retry_task_scripts_downloads: must be an integer, got 'many'"),
        ({"retry_task_output_uploads": -1}, "offload.yml: command_executor.ecs.retry_task_output_uploads: must be a count of retries (0 or more), got -1"),
        ({"enable_curl_fail_opt_on_uploads": "maybe"}, "offload.yml: command_executor.ecs.enable_curl_fail_opt_on_uploads: must be true or false, got 'maybe'"),
    ],
)
def test_a_wrong_value_is_a_config_error_with_its_key_path_and_exit_status_2(world: World, project: Path, script: dict[str, Any], expected: str) -> None:
    started = len(world.agent.started)
    done = run_flow(world, project, **script)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert len(world.agent.started) == started, "nothing was launched"


def test_the_keys_under_the_cluster_are_refused_with_where_they_go(world: World, project: Path) -> None:
    data = config(world)
    data["command_executor"]["ecs"][data["command_executor"]["ecs"]["name"]]["retry_task_output_uploads"] = 3
    (project / "flow.dig").write_text(FLOW)
    (project / "offload.yml").write_text(yaml.safe_dump(data))
    done = cli(project, "explain", "flow.dig")
    assert done.returncode == 2
    where = f"offload.yml: command_executor.ecs.{data['command_executor']['ecs']['name']}.retry_task_output_uploads"
    assert f"{where}: goes beside name, as in Digdag: command_executor.ecs.retry_task_output_uploads" in done.stderr


def test_properties_give_the_keys_as_digdag_names_them(world: World, project: Path) -> None:
    path = project / "digdag.properties"
    section = world.section()
    name = section["name"]
    lines = [f"agent.command_executor.ecs.name = {name}", "agent.command_executor.ecs.temporal_storage.type = s3"]
    lines += [f"agent.command_executor.ecs.temporal_storage.s3.bucket = {section['temporal_storage']['s3']['bucket']}"]
    lines += [f"agent.command_executor.ecs.{name}.{k} = {','.join(v) if isinstance(v, list) else v}" for k, v in section[name].items()]
    lines += [
        "agent.command_executor.ecs.retry_task_scripts_downloads = 4",
        "agent.command_executor.ecs.retry_task_output_uploads = 1",
        "agent.command_executor.ecs.enable_curl_fail_opt_on_uploads = true",
    ]
    path.write_text("\n".join(lines) + "\n")
    with offload.Executor(load_system_config(str(path))) as executor:
        script = executor.backends.get("ecs").config.script
    assert (script.retry_task_scripts_downloads, script.retry_task_output_uploads, script.enable_curl_fail_opt_on_uploads) == (4, 1, True)
