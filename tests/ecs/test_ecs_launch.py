"""Starting tasks: the RunTask call, retries of ``failures[]``, throttling, expired
credentials, the 8192-character override limit, quoting, and tasks that never start."""

from __future__ import annotations

import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import attrs
import pytest
from ecs_harness.world import IMAGE, World

import offload
from offload.testing import make_request, wait_for
from offload_ecs.backend import EcsBackend

TASK = {"docker": {"image": IMAGE}}


def run(
    world: World, project: Path, script: str, *, config: dict[str, Any] | None = None, task: dict[str, Any] | None = None, **fields: Any
) -> tuple[offload.Result, list[str], offload.Handle]:
    with offload.Executor(config or world.config()) as executor:
        handle = executor.submit(make_request(project, script, task or TASK, **fields))
        result, logs = wait_for(executor, handle, limit=60)
    return result, logs, handle


def command_of(world: World, handle: offload.Handle) -> str:
    task = world.task(handle.state["task_arn"])
    return str(task["overrides"]["containerOverrides"][0]["command"][2])


def test_run_task_failures_are_retried_with_backoff(world: World, project: Path) -> None:
    failure = {"tasks": [], "failures": [{"arn": "arn:aws:ecs:us-east-1:123456789012:container-instance/x", "reason": "RESOURCE:MEMORY"}]}
    world.server.faults.add("RunTask", 2, body=failure)
    result, logs, _ = run(world, project, "echo third time lucky")
    assert result.ok, result
    assert "third time lucky" in logs
    notes = [line for line in logs if "run_task failed (RESOURCE:MEMORY)" in line]
    assert len(notes) == 2 and "attempt 2 of 3" in notes[0] and "attempt 3 of 3" in notes[1]


def test_run_task_failures_past_the_limit_fail_the_task_with_awss_reason(world: World, project: Path) -> None:
    failure = {"tasks": [], "failures": [{"reason": "Capacity is unavailable at this time", "detail": "FARGATE"}]}
    world.server.faults.add("RunTask", 5, body=failure)
    result, _, _ = run(world, project, "echo never", config=world.config(max_run_task_attempts=2))
    assert result.state is offload.TaskState.FAILED
    assert result.error == "run_task failed 2 times: Capacity is unavailable at this time (FARGATE)"


def test_throttling_is_retried_by_the_client(world: World, project: Path) -> None:
    world.server.faults.add("RunTask", 2, error=("ThrottlingException", "Rate exceeded"))
    world.server.faults.add("DescribeTasks", 1, error=("ThrottlingException", "Rate exceeded"))
    result, logs, _ = run(world, project, "echo throttled but fine")
    assert result.ok and "throttled but fine" in logs


def test_a_refused_run_task_is_a_backend_error_with_awss_message(world: World, project: Path) -> None:
    world.server.faults.add("RunTask", 1, error=("InvalidParameterException", "No Container Instances were found in your cluster."))
    with offload.Executor(world.config()) as executor, pytest.raises(offload.BackendError) as info:
        executor.submit(make_request(project, "true", TASK))
    assert "run_task refused the task: InvalidParameterException: No Container Instances were found" in str(info.value)


def test_expired_credentials_rebuild_the_client_without_losing_the_task(world: World, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "OLDKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "old-secret")
    config = world.config(access_key_id=None, secret_access_key=None)
    # URLs signed with expiring credentials die with them: the bucket has long-lived ones.
    config["command_executor"]["ecs"]["temporal_storage"]["s3"]["credentials"] = {"access-key-id": "STORAGEKEY", "secret-access-key": "storage-secret"}
    with offload.Executor(config) as executor:
        handle = executor.submit(make_request(project, "echo started; sleep 1; echo survived", TASK))
        backend = executor.backends.get("ecs")
        backend.aws.credential_delay = 0.05  # type: ignore[attr-defined]
        world.server.faults.expired_keys.add("OLDKEY")  # the session expires while the task runs
        threading.Timer(0.3, lambda: os.environ.update(AWS_ACCESS_KEY_ID="NEWKEY", AWS_SECRET_ACCESS_KEY="new-secret")).start()
        result, logs = wait_for(executor, handle, limit=60)
        assert backend.aws.rebuilds >= 1  # type: ignore[attr-defined]
    assert result.ok and "survived" in logs


def test_credentials_that_stay_rejected_are_one_clear_error(world: World, project: Path) -> None:
    world.server.faults.expired_keys.add("DEADKEY")
    config = world.config(access_key_id="DEADKEY", secret_access_key="dead-secret-value")
    with offload.Executor(config) as executor:
        executor.backends.get("ecs").aws.credential_delay = 0.01  # type: ignore[attr-defined]
        with pytest.raises(offload.BackendError) as info:
            executor.submit(make_request(project, "true", TASK))
    assert "AWS rejected the credentials (ExpiredToken" in str(info.value)
    assert "dead-secret-value" not in str(info.value)


def test_every_argument_is_quoted(world: World, project: Path) -> None:
    tricky = ["it's", 'say "hi"', "$(touch pwned)", "a;b", "new\nline", "*", ""]
    with offload.Executor(world.config()) as executor:
        request = attrs.evolve(make_request(project, "", TASK), argv=("printf", "<%s>\\n", *tricky))
        result, logs = wait_for(executor, executor.submit(request))
    assert result.ok, logs
    assert "\n".join(logs).count("<") == len(tricky)
    assert "<it's>" in logs and '<say "hi">' in logs and "<$(touch pwned)>" in logs and "<a;b>" in logs and "<*>" in logs and "<>" in logs
    assert not (project / "pwned").exists()


def test_a_large_environment_travels_in_the_archive(world: World, project: Path) -> None:
    env = {f"VAR_{i}": "x" * 200 + f"-{i}" for i in range(60)}  # about 13,000 characters
    env["TRICKY"] = "it's $(not run)\nsecond line"
    result, logs, handle = run(world, project, 'printf "%s|%s\\n" "$VAR_59" "$TRICKY"', env=env)
    assert result.ok, logs
    assert "x" * 200 + "-59|it's $(not run)" in logs and "second line" in logs
    assert any("environment goes in the project archive" in line for line in logs)
    overrides = world.task(handle.state["task_arn"])["overrides"]
    assert len(str(overrides)) < 8192
    assert "environment" not in overrides["containerOverrides"][0]


def test_a_large_environment_uses_an_environment_file_when_asked(world: World, project: Path) -> None:
    env = {f"VAR_{i}": "y" * 200 for i in range(60)}
    result, logs, handle = run(world, project, 'echo "${#VAR_7}"', env=env, config=world.config(use_environment_file=True))
    assert result.ok and "200" in logs
    container = world.task(handle.state["task_arn"])["overrides"]["containerOverrides"][0]
    assert container["environmentFiles"][0]["value"].startswith("arn:aws:s3:::offload-test-temporal/")
    assert any("ECS environment file" in line for line in logs)


def test_a_huge_command_line_travels_in_the_archive(world: World, project: Path) -> None:
    words = " ".join(f"word{i}" for i in range(2000))
    result, logs, handle = run(world, project, f"echo {words} | wc -w")
    assert result.ok and "2000" in [line.strip() for line in logs]
    assert "offload/main.sh" in command_of(world, handle)


def test_urls_outlive_the_timeout(world: World, project: Path) -> None:
    result, _, handle = run(world, project, "true", timeout=50_000)
    assert result.ok
    urls = re.findall(r"'(http://[^']+)'", command_of(world, handle))
    assert urls
    for url in urls:
        query = parse_qs(urlparse(url).query)
        expires = int(query["X-Amz-Expires"][0])
        assert expires >= 50_000


def test_the_run_task_call_carries_config_resources_tags_and_kwargs(world: World, project: Path) -> None:
    config = world.config(
        tags={"team": "data"},
        started_by="nightly",
        assign_public_ip=True,
        run_task_kwargs={
            "enableECSManagedTags": True,
            "overrides": {"containerOverrides": [{"name": "main", "environment": [{"name": "SITE", "value": "from-kwargs"}]}]},
        },
    )
    result, logs, handle = run(world, project, 'echo "site=$SITE"', config=config, resources=offload.Resources(cpu=0.5, memory=1024))
    assert result.ok and "site=from-kwargs" in logs
    task = world.task(handle.state["task_arn"])
    container = task["overrides"]["containerOverrides"][0]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert (container["cpu"], container["memory"]) == (512, 1024)
    assert (task["overrides"]["cpu"], task["overrides"]["memory"]) == ("512", "1024")
    assert task["startedBy"] == "nightly"
    tags = {t["key"]: t["value"] for t in world.ecs.list_tags_for_resource(resourceArn=task["taskArn"])["tags"]}
    assert tags["team"] == "data" and tags["offload.task-id"] == handle.task_id


def test_tags_from_labels_and_task_ids_keep_to_ecss_characters(world: World, project: Path) -> None:
    task_id = "run.+load;data(1)*#%x.1"
    labels = {"offload.task-name": "+load;data (x) ünï", "team": "a&b"}
    result, _, handle = run(world, project, "true", task_id=task_id, labels=labels)
    assert result.ok
    tags = {t["key"]: t["value"] for t in world.ecs.list_tags_for_resource(resourceArn=handle.state["task_arn"])["tags"]}
    allowed = re.compile(r"^[\w\s.:/=+\-@]*$")
    assert all(allowed.match(k) and allowed.match(v) for k, v in tags.items()), tags
    assert tags["offload.task-id"] == "run.+load_data_1____x.1"
    assert tags["offload.task-name"] == "+load_data _x_ ünï" and tags["team"] == "a_b"


def test_awsvpc_without_subnets_is_a_clear_error(world: World, project: Path) -> None:
    with offload.Executor(world.config(subnets=[])) as executor, pytest.raises(offload.BackendError) as info:
        executor.submit(make_request(project, "true", TASK))
    assert "uses the awsvpc network mode: set command_executor.ecs.offload-test.subnets" in str(info.value)


def test_a_task_that_never_starts_fails_with_awss_reason(world: World, project: Path) -> None:
    name = f"unpullable-{uuid.uuid4().hex[:6]}:1"
    world.register(name)
    result, logs, _ = run(world, project, "echo never", task={"docker": {"image": name}})
    assert result.state is offload.TaskState.FAILED
    assert result.exit_code is None
    assert result.error is not None
    assert "never started" in result.error and "TaskFailedToStart" in result.error and "CannotPullContainerError" in result.error
    assert "never" not in logs


@pytest.mark.parametrize("missing", [("curl",), ("curl", "wget")])
def test_the_bootstrap_falls_back_to_wget_then_python3(world: World, project: Path, tmp_path: Path, missing: tuple[str, ...]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for name in os.listdir(directory):
            if name not in missing and not (bin_dir / name).exists():
                (bin_dir / name).symlink_to(os.path.join(directory, name))
    (project / "data.txt").write_text("shipped\n")
    world.agent.path = str(bin_dir)
    try:
        result, logs, _ = run(
            world, project, 'cat data.txt; for t in curl wget python3; do command -v $t >/dev/null && echo "has $t"; done; echo out > "$OFFLOAD_IO_DIR/out.txt"'
        )
    finally:
        world.agent.path = None
    assert result.ok, logs
    assert "shipped" in logs and "has curl" not in logs
    assert ("has wget" in logs) is ("wget" not in missing)


@pytest.mark.parametrize("backend", [None, "ecs"])
def test_a_submitted_task_is_parsed_once(world: World, project: Path, monkeypatch: pytest.MonkeyPatch, backend: str | None) -> None:
    calls: list[dict[str, Any]] = []
    parse = EcsBackend.parse_task_config

    def counting(self: EcsBackend, sections: Any, where: str) -> tuple[Any, list[offload.Problem]]:
        calls.append(dict(sections))
        return parse(self, sections, where)

    monkeypatch.setattr(EcsBackend, "parse_task_config", counting)
    with offload.Executor(world.config()) as executor:
        handle = executor.submit(make_request(project, "echo parsed once", TASK), backend)
        result, logs = wait_for(executor, handle, limit=60)
    assert result.ok and "parsed once" in logs, logs
    assert calls == [TASK]
