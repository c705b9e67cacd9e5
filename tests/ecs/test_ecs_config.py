"""The ``command_executor.ecs`` section: Digdag's keys from YAML or properties, every
problem reported with its path, and when ECS counts as configured for a task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import offload
from offload.executor.config import build_system_config, read_config_document
from offload_ecs.backend import EcsBackend
from offload_ecs.config import EcsConfig, parse_ecs_config
from offload_ecs.taskconfig import EcsTaskSettings

#: The core's storages, as an Executor hands them to the ECS backend.
CONTEXT = offload.BackendContext(storages=offload.Storages(offload.make_plugin_manager().storages))

WHERE = "offload.yml: command_executor.ecs"


def section(**cluster: Any) -> dict[str, Any]:
    return {"name": "digdag-test", "digdag-test": {"region": "us-east-1", **cluster}, "temporal_storage": {"type": "s3", "s3": {"bucket": "b-1"}}}


def problems(data: dict[str, Any]) -> list[str]:
    config, found = parse_ecs_config(data, WHERE, CONTEXT)
    assert (config is None) == bool(found)
    assert all(p.fatal for p in found)
    return [str(p) for p in found]


def test_a_full_yaml_section_is_read() -> None:
    data = section(
        launch_type="FARGATE",
        subnets=["subnet-1", "subnet-2"],
        security_groups="sg-1,sg-2",
        assign_public_ip="true",
        max_retries="5",
        container_cpu=512,
        container_memory="1024",
        task_cpu="1024",
        task_memory="2048",
        started_by="nightly",
        tags={"team": "data"},
        platform_version="1.4.0",
        use_environment_file=True,
        run_task_kwargs={"enableExecuteCommand": True, "propagateTags": "TASK_DEFINITION"},
    )
    data["temporal_storage"]["s3"].update(endpoint="s3.amazonaws.com", credentials={"access-key-id": "AKIA", "secret-access-key": "s3cr3t"})
    config, found = parse_ecs_config(data, WHERE, CONTEXT)
    assert found == []
    assert isinstance(config, EcsConfig) and config.configured
    s = config.settings
    assert (s.subnets, s.security_groups, s.assign_public_ip, s.max_retries) == (("subnet-1", "subnet-2"), ("sg-1", "sg-2"), True, 5)
    assert (s.container_cpu, s.container_memory, s.task_cpu, s.task_memory) == (512, 1024, "1024", "2048")
    assert config.run_task_kwargs == {"enableExecuteCommand": True, "propagateTags": "TASK_DEFINITION"}
    assert config.storage is not None and config.storage.config.access_key_id == "AKIA"
    assert "s3cr3t" not in repr(config)


def test_digdag_properties_are_read(tmp_path: Path) -> None:
    path = tmp_path / "digdag.properties"
    path.write_text(
        "agent.command_executor.ecs.name = digdag-test\n"
        "agent.command_executor.ecs.digdag-test.access_key_id = AKIAEXAMPLE\n"
        "agent.command_executor.ecs.digdag-test.secret_access_key = very-secret\n"
        "agent.command_executor.ecs.digdag-test.launch_type = EC2\n"
        "agent.command_executor.ecs.digdag-test.region = us-east-1\n"
        "agent.command_executor.ecs.digdag-test.subnets = subnet-NNNNN\n"
        "agent.command_executor.ecs.digdag-test.max_retries = 3\n"
        "agent.command_executor.ecs.digdag-test.capacity_provider_name =\n"
        'agent.command_executor.ecs.digdag-test.run_task_kwargs = {"enableECSManagedTags": true}\n'
        "agent.command_executor.ecs.temporal_storage.type = s3\n"
        "agent.command_executor.ecs.temporal_storage.s3.bucket = my-bucket\n"
        "agent.command_executor.ecs.temporal_storage.s3.endpoint = s3.amazonaws.com\n"
        "agent.command_executor.ecs.temporal_storage.s3.credentials.access-key-id = AKIAS3\n"
        "agent.command_executor.ecs.temporal_storage.s3.credentials.secret-access-key = s3-secret\n"
    )
    system = build_system_config(read_config_document(str(path)), path.name)
    config, found = parse_ecs_config(system.sections["ecs"], system.where("ecs"), CONTEXT)
    assert found == []
    assert config is not None and config.cluster == "digdag-test"
    assert config.settings.launch_type == "EC2" and config.settings.subnets == ("subnet-NNNNN",)
    assert config.run_task_kwargs == {"enableECSManagedTags": True}
    assert config.storage is not None and config.storage.config.bucket == "my-bucket"


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ({"launch_type": "FARGTE"}, f"{WHERE}.digdag-test.launch_type: must be FARGATE or EC2, got 'FARGTE'"),
        ({"lauch_type": "EC2"}, f"{WHERE}.digdag-test: unknown key 'lauch_type'"),
        ({"max_retries": "three"}, f"{WHERE}.digdag-test.max_retries: must be an integer, got 'three'"),
        ({"launch_type": "EC2", "capacity_provider_name": "cp"}, f"{WHERE}.digdag-test.launch_type: ECS takes a launch type or a capacity provider, not both"),
        ({"capacity_provider_name": "a", "capacity_provider_strategy": [{"capacityProvider": "b"}]}, f"{WHERE}.digdag-test.capacity_provider_name: give"),
        ({"capacity_provider_strategy": [{"provider": "b"}]}, f"{WHERE}.digdag-test.capacity_provider_strategy[0]: must be a mapping with a capacityProvider"),
        ({"access_key_id": "AKIA"}, f"{WHERE}.digdag-test.secret_access_key: access_key_id and secret_access_key go together"),
        ({"placement_strategy_type": "spread"}, f"{WHERE}.digdag-test.placement_strategy_field: required with placement_strategy_type spread"),
        ({"started_by": "x" * 40}, f"{WHERE}.digdag-test.started_by: must be at most 36 characters"),
        ({"run_task_kwargs": {"count": 2}}, f"{WHERE}.digdag-test.run_task_kwargs: 'count' is set by offload"),
        ({"run_task_kwargs": {"enableExecuteComand": True}}, f'{WHERE}.digdag-test.run_task_kwargs: Unknown parameter in input: "enableExecuteComand"'),
        ({"run_task_kwargs": {"propagateTags": 3}}, f"{WHERE}.digdag-test.run_task_kwargs: Invalid type for parameter propagateTags"),
        ({"run_task_kwargs": "{not json"}, f"{WHERE}.digdag-test.run_task_kwargs: must be a mapping or list (or JSON text of one)"),
    ],
)
def test_each_wrong_key_is_one_message_with_its_path(cluster: dict[str, Any], expected: str) -> None:
    found = problems(section(**cluster))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_every_problem_is_reported_at_once() -> None:
    data = section(launch_type="X", max_retries="many")
    data["temporal_storage"] = {"type": "s3", "s3": {"bukket": "b"}}
    found = problems(data)
    assert any(".launch_type:" in p for p in found)
    assert any(".max_retries:" in p for p in found)
    assert f"{WHERE}.temporal_storage.s3.bukket: unknown key (known keys: bucket, credentials, endpoint, prefix, region)" in found
    assert any(p.startswith(f"{WHERE}.temporal_storage.s3.bucket: required key missing") for p in found)


def test_the_temporal_storage_is_any_installed_storage_plugin() -> None:
    data = section()
    data["temporal_storage"] = {"type": "s4", "s4": {"bucket": "b"}}
    assert problems(data) == [
        f"{WHERE}.temporal_storage.s4: unknown key (known keys: type, gcs, s3)",
        f"{WHERE}.temporal_storage.type: unknown storage type 's4' (known: gcs, s3)",
    ]
    data["temporal_storage"] = {"type": "s3", "s3": {"bucket": "b"}}
    none = offload.BackendContext()  # no storage plugin installed
    config, found = parse_ecs_config(data, WHERE, none)
    assert config is None and [str(p) for p in found] == [f"{WHERE}.temporal_storage.type: the s3 storage is not installed (pip install offload-s3)"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"digdag-test": {}}, f"{WHERE}.name: required key missing"),
        ({"name": "c", "c": {}}, f"{WHERE}.temporal_storage: required"),
        (
            {"name": "c", "other": {}, "temporal_storage": {"s3": {"bucket": "b"}}},
            f"{WHERE}.other: unknown key (known keys: name, c, temporal_storage, retry_task_",
        ),
        (
            {"name": "c", "temporal_storage": {"s3": {"bucket": "b", "credentials": {"access-key-id": "A"}}}},
            f"{WHERE}.temporal_storage.s3.credentials: access-key-id and secret-access-key go together",
        ),
    ],
)
def test_section_level_problems(data: dict[str, Any], expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(data)), problems(data)


def test_a_wrong_secret_is_never_echoed() -> None:
    data = section(secret_access_key=["hunter2-secret"], access_key_id="AKIA")
    text = "\n".join(problems(data))
    assert "secret_access_key: must be a string" in text
    assert "hunter2" not in text


def test_an_empty_section_means_not_configured_and_selection_falls_back() -> None:
    with offload.Executor({"command_executor": {"ecs": {}}}) as executor:
        request = offload.TaskRequest(task_id="t", argv=["true"], project_dir="/tmp", executor_config={"docker": {"image": "python:3.12"}})
        selection = executor.select(request)
    first = selection.attempts[0]
    assert first.backend == "ecs" and not first.chosen
    assert "not configured" in first.reasons[0]
    assert selection.backend != "ecs" and not selection.fatal


def test_a_configuration_error_stops_the_run_with_exit_status_2() -> None:
    with pytest.raises(offload.ConfigError) as info:
        offload.Executor({"command_executor": {"ecs": section(launch_type="FARGTE")}})
    assert info.value.exit_status == 2
    assert "command_executor.ecs.digdag-test.launch_type: must be FARGATE or EC2, got 'FARGTE'" in str(info.value)


ARN = "arn:aws:ecs:us-east-1:1:task-definition/f:1"


def ecs_backend(data: dict[str, Any] | None = None) -> EcsBackend:
    config, found = parse_ecs_config(section() if data is None else data, WHERE, CONTEXT)
    assert config is not None, found
    return EcsBackend(config)


@pytest.mark.parametrize(
    ("executor_config", "usable", "reason"),
    [
        ({"docker": {"image": "python:3.12"}}, True, ""),
        ({"ecs": {"task_definition_arn": ARN}}, True, ""),
        ({}, False, "sets neither ecs.task_definition_arn nor docker.image"),
        ({"docker": {"image": "python:3.12", "build": ["pip install x"]}}, False, "ECS cannot build images"),
    ],
)
def test_which_tasks_ecs_takes(executor_config: dict[str, Any], usable: bool, reason: str) -> None:
    with offload.Executor({"command_executor": {"ecs": section()}}) as executor:
        request = offload.TaskRequest(task_id="t", argv=["true"], project_dir="/tmp", executor_config=executor_config)
        selection = executor.select(request)
    assert (selection.backend == "ecs") is usable
    if not usable:
        assert reason in selection.attempts[0].reasons[0] and not selection.fatal
    settings, problems = ecs_backend().parse_task_config(executor_config, "task t")
    assert (isinstance(settings, EcsTaskSettings) and not problems) is usable
    if not usable:
        assert settings is None and len(problems) == 1 and reason in str(problems[0]) and not problems[0].fatal


def test_the_settings_carry_the_task_definition_the_image_and_the_container() -> None:
    backend = ecs_backend()
    by_arn, found = backend.parse_task_config({"ecs": {"task_definition_arn": ARN, "container_name": "app"}, "docker": {"image": "ignored:1"}}, "task t")
    assert found == [] and by_arn == EcsTaskSettings(task_definition_arn=ARN, container_name="app")
    by_image, found = backend.parse_task_config({"docker": {"image": "python:3.12"}}, "task t")
    assert found == [] and by_image == EcsTaskSettings(image="python:3.12")
    assert EcsBackend.task_keys == ("ecs", "docker") and EcsBackend.task_config_type is EcsTaskSettings


def test_the_docker_backends_own_keys_are_not_ecss_business() -> None:
    docker = {"image": "python:3.12", "run_options": ["--memory", "1g", "-e", "A=1"], "pull_always": True, "selinux": True}
    settings, found = ecs_backend().parse_task_config({"docker": docker}, "task t")
    assert found == [] and settings == EcsTaskSettings(image="python:3.12")
    with offload.Executor({"command_executor": {"ecs": section()}}) as executor:
        request = offload.TaskRequest(task_id="t", argv=["true"], project_dir="/tmp", executor_config={"docker": docker})
        selection = executor.select(request)
    assert selection.backend == "ecs" and not selection.fatal, selection
    assert selection.settings == EcsTaskSettings(image="python:3.12")


def test_not_configured_in_the_system_config_is_not_fatal() -> None:
    settings, found = ecs_backend({}).parse_task_config({"ecs": {"task_definition_arn": ARN}}, "task t")
    assert settings is None
    assert [str(p) for p in found] == ["command_executor.ecs: not configured (the system config has no ecs section with name and temporal_storage)"]
    assert not found[0].fatal


@pytest.mark.parametrize(
    ("ecs", "expected"),
    [
        ({"task_definiton_arn": "x"}, ["task t: ecs.task_definiton_arn: unknown key (known keys: task_definition_arn, container_name)"]),
        ({"task_definition_arn": 3}, ["task t: ecs.task_definition_arn: must be a non-empty string, got 3"]),
        (
            {"task_definition_arn": "", "container_name": ["app"]},
            ["task t: ecs.task_definition_arn: must be a non-empty string, got ''", "task t: ecs.container_name: must be a non-empty string, got ['app']"],
        ),
        ("arn:aws:ecs:x", ["task t: ecs: must be a mapping"]),
    ],
)
def test_a_wrong_ecs_section_is_fatal(ecs: Any, expected: list[str]) -> None:
    settings, found = ecs_backend().parse_task_config({"ecs": ecs, "docker": {"image": "python:3.12"}}, "task t")
    assert settings is None
    assert [str(p) for p in found] == expected
    assert all(p.fatal for p in found)


def test_an_unknown_task_level_key_is_fatal() -> None:
    with offload.Executor({"command_executor": {"ecs": section()}}) as executor:
        request = offload.TaskRequest(task_id="t", argv=["true"], project_dir="/tmp", executor_config={"ecs": {"task_definiton_arn": "x"}})
        selection = executor.select(request)
    assert selection.backend is None
    assert "task t: ecs.task_definiton_arn: unknown key" in str(selection.fatal[0])


def test_submit_and_adopt_need_the_settings_the_executor_parsed() -> None:
    backend = ecs_backend()
    request = offload.TaskRequest(task_id="t", argv=["true"], project_dir="/tmp", executor_config={"docker": {"image": "python:3.12"}})
    for call in (backend.submit, backend.adopt):
        with pytest.raises(offload.BackendError, match=r"^ecs: request.settings is not set: submit through offload.Executor$"):
            call(request)
