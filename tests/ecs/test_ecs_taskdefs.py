"""Finding the task definition: one filtered Resource Groups Tagging call, cached,
never Digdag's list-everything-and-ask-each-one (its issue #1488)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ecs_harness.world import World

import offload
from offload.testing import make_request, wait_for
from offload_ecs import taskdefs
from offload_ecs.aws import Aws
from offload_ecs.config import parse_ecs_config
from offload_ecs.taskconfig import EcsTaskSettings

#: The core's storages, as an Executor hands them to the ECS backend.
CONTEXT = offload.BackendContext(storages=offload.Storages(offload.make_plugin_manager().storages))


def aws_for(world: World) -> Aws:
    config, problems = parse_ecs_config(world.section(), "test", CONTEXT)
    assert config is not None, problems
    return Aws(config)


def image() -> str:
    return f"registry.example/app-{uuid.uuid4().hex[:8]}:1"


def test_an_image_resolves_with_one_tagging_call_and_then_from_the_cache(world: World) -> None:
    name = image()
    for _ in range(20):  # other definitions in the account are never listed
        world.register(f"noise-{uuid.uuid4().hex[:6]}")
    arn = world.register(name)
    calls = world.server.faults.calls
    before = calls.copy()
    found = taskdefs.resolve(aws_for(world), EcsTaskSettings(image=name), ("scope-a",))
    assert found.arn == arn and found.container == "main" and found.log_group == "/offload/test"
    assert calls["GetResources"] - before["GetResources"] == 1
    assert calls["DescribeTaskDefinition"] - before["DescribeTaskDefinition"] == 1
    assert calls["ListTaskDefinitions"] == before["ListTaskDefinitions"]
    again = calls.copy()
    assert taskdefs.resolve(aws_for(world), EcsTaskSettings(image=name), ("scope-a",)).arn == arn
    assert calls == again


def test_digdags_tag_is_accepted(world: World) -> None:
    name = image()
    arn = world.register(name, tag_key="digdag.docker.image")
    assert taskdefs.resolve(aws_for(world), EcsTaskSettings(image=name), ("scope-b",)).arn == arn


def test_several_matches_take_the_newest_active_revision_and_say_so(world: World, project: Path) -> None:
    name = image()
    family = f"fam-{uuid.uuid4().hex[:6]}"
    world.register(name, family=family)
    second = world.register(name, family=family)
    newest = world.register(name, family=family)
    world.ecs.deregister_task_definition(taskDefinition=newest)
    found = taskdefs.resolve(aws_for(world), EcsTaskSettings(image=name), ("scope-c",))
    assert found.arn == second
    assert found.note is not None and "3 task definitions are tagged offload.docker.image=" in found.note
    taskdefs.clear_cache()
    with offload.Executor(world.config()) as executor:
        result, logs = wait_for(executor, executor.submit(make_request(project, "echo ran", {"docker": {"image": name}})))
    assert result.ok
    assert any(line.startswith("offload: 3 task definitions are tagged") and second in line for line in logs)


def test_no_match_is_a_clear_error_naming_the_tag(world: World, project: Path) -> None:
    name = image()
    with offload.Executor(world.config()) as executor, pytest.raises(offload.BackendError) as info:
        executor.submit(make_request(project, "true", {"docker": {"image": name}}))
    assert f"no task definition is tagged offload.docker.image={name}" in str(info.value)


def test_an_explicit_arn_is_used_as_is(world: World, project: Path) -> None:
    arn = world.register(image(), tag_key=None)
    with offload.Executor(world.config()) as executor:
        handle = executor.submit(make_request(project, "echo explicit", {"ecs": {"task_definition_arn": arn}}))
        result, logs = wait_for(executor, handle)
    assert result.ok and "explicit" in logs
    assert world.task(handle.state["task_arn"])["taskDefinitionArn"] == arn


def test_a_missing_arn_is_a_clear_error(world: World, project: Path) -> None:
    arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/does-not-exist:1"
    with offload.Executor(world.config()) as executor, pytest.raises(offload.BackendError) as info:
        executor.submit(make_request(project, "true", {"ecs": {"task_definition_arn": arn}}))
    assert f"cannot find task definition {arn}" in str(info.value)
