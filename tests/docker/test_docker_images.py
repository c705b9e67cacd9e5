"""Image building through the hooks: stable tag, built once, never rebuilt, failures reported."""

from __future__ import annotations

import hashlib
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import docker
import docker.errors
import pytest

import offload
from offload import TaskState
from offload.testing import make_request, wait_for
from offload_docker.backend import DockerBackend
from offload_docker.options import BuildOptions

Make = Callable[..., offload.Executor]


def engine_address() -> str:
    return offload.Executor({"command_executor": {"type": "docker"}}).backends.get("docker").engines.address(None)  # type: ignore[attr-defined, no-any-return]


def built_tag(spec: offload.ImageSpec) -> str:
    """The tag the plugin builds ``spec`` as, with the core's default Dockerfile."""
    return offload.image_tag(spec, offload.default_dockerfile(spec))


class BuildCounter:
    """A plugin wrapping ``offload_build_image``: counts the builds that really ran."""

    def __init__(self) -> None:
        self.tags: list[str] = []

    @offload.hookimpl(wrapper=True)
    def offload_build_image(self, spec: offload.ImageSpec, dockerfile: str, tag: str, log: Callable[[str], None], engine: Any, options: Any) -> Any:
        self.tags.append(tag)
        return (yield)


class BuildWatcher:
    """A plugin that sees every build request first, records its arguments and builds
    nothing (returns ``None``), so offload-docker builds."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, Any]] = []

    @offload.hookimpl(tryfirst=True)
    def offload_build_image(self, spec: offload.ImageSpec, dockerfile: str, tag: str, log: Callable[[str], None], engine: Any, options: Any) -> None:
        self.seen.append((tag, engine, options))


@pytest.fixture
def counter() -> BuildCounter:
    return BuildCounter()


@pytest.fixture
def counted(docker_executor: Make, counter: BuildCounter) -> offload.Executor:
    return docker_executor(plugin_manager=offload.make_plugin_manager([("build-counter", counter)]))


@pytest.fixture
def built_images(engine: docker.DockerClient) -> Iterator[list[str]]:
    """Tags a test builds; removed afterwards so the engine does not fill up."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        try:
            engine.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass


def build_config(image: str, *steps: str, options: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"docker": {"image": image, "build": list(steps), "build_options": list(options)}}


def test_a_built_image_gets_the_spec_tag_and_is_never_rebuilt(
    counted: offload.Executor, counter: BuildCounter, project: Path, image: str, built_images: list[str]
) -> None:
    marker = uuid.uuid4().hex
    config = build_config(image, f"echo {marker} > /built-marker", "echo second step")
    spec = offload.ImageSpec(image=image, build=config["docker"]["build"])
    built_images.append(built_tag(spec))
    first, logs = wait_for(counted, counted.submit(make_request(project, "cat /built-marker", config), backend="docker"))
    assert first.ok, logs
    assert marker in logs
    assert any(line.startswith("Step 2/4 : RUN echo") for line in logs), "the build log is in the task's log"
    assert counter.tags == [built_tag(spec)]
    second, logs = wait_for(counted, counted.submit(make_request(project, "cat /built-marker", config), backend="docker"))
    assert second.ok
    assert logs == [marker], "no build output: nothing was built"
    assert counter.tags == [built_tag(spec)]


def test_build_args_reach_the_build(counted: offload.Executor, project: Path, image: str, built_images: list[str]) -> None:
    value = uuid.uuid4().hex
    config = build_config(image, "echo $VAR1 > /arg", options=(f"--build-arg VAR1={value}",))
    built_images.append(built_tag(offload.ImageSpec(image, config["docker"]["build"], config["docker"]["build_options"])))
    result, logs = wait_for(counted, counted.submit(make_request(project, "cat /arg", {**config}), backend="docker"))
    assert result.ok, logs
    assert logs[-1] == value


def test_two_tasks_needing_the_same_new_image_build_it_once(
    counted: offload.Executor, counter: BuildCounter, project: Path, image: str, built_images: list[str]
) -> None:
    config = build_config(image, f"sleep 1; echo {uuid.uuid4().hex} > /once")
    built_images.append(built_tag(offload.ImageSpec(image, config["docker"]["build"])))
    handles = [counted.submit(make_request(project, "cat /once", config), backend="docker") for _ in range(2)]
    results = [wait_for(counted, handle)[0] for handle in handles]
    assert [r.state for r in results] == [TaskState.SUCCEEDED] * 2
    assert len(counter.tags) == 1
    key = hashlib.sha1(f"{engine_address()}\0{counter.tags[0]}".encode()).hexdigest()[:20]
    assert not Path(tempfile.gettempdir(), "offload-docker-locks", f"{key}.lock").exists(), "the build's lock file is removed"


def test_a_failing_build_step_fails_the_task_with_the_step_and_its_output(
    counted: offload.Executor, project: Path, image: str, engine: docker.DockerClient
) -> None:
    config = build_config(image, "echo fine", "echo about to fail; echo why: no such tool >&2; exit 3")
    request = make_request(project, "true", config)
    result, logs = wait_for(counted, counted.submit(request, backend="docker"))
    assert result.state is TaskState.FAILED
    error = result.error or ""
    assert error.startswith(f"task {request.task_id}: image build failed at Step 3/4 : RUN echo about to fail; echo why: no such tool >&2; exit 3: ")
    assert "returned a non-zero code: 3" in error
    assert "why: no such tool" in error, "the failing step's output is in the message"
    assert "about to fail" in logs, ("and it was in the log as it happened", logs)
    assert engine.containers.list(all=True, filters={"label": f"offload.task-id={request.task_id}"}) == []
    tag = built_tag(offload.ImageSpec(image, config["docker"]["build"]))
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(tag)


def test_cancel_during_a_build_cancels_the_task_stops_the_build_and_leaves_no_image(
    counted: offload.Executor, project: Path, image: str, engine: docker.DockerClient, built_images: list[str]
) -> None:
    config = build_config(image, f"sleep 2; echo {uuid.uuid4().hex}")
    tag = built_tag(offload.ImageSpec(image, config["docker"]["build"]))
    built_images.append(tag)
    request = make_request(project, "echo should not run", config)
    handle = counted.submit(request, backend="docker")
    (status,) = counted.poll([handle])
    assert status.state is TaskState.PENDING
    counted.cancel(handle, grace=1)
    result, logs = wait_for(counted, handle)
    assert result.state is TaskState.CANCELLED
    assert "should not run" not in logs
    assert engine.containers.list(all=True, filters={"label": f"offload.task-id={request.task_id}"}) == []
    deadline = time.monotonic() + 6  # well past the build's 2 s: a build left running would be done
    while time.monotonic() < deadline:
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(tag)
        time.sleep(0.2)


def test_a_build_plugin_gets_the_engine_and_the_parsed_build_options(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, built_images: list[str]
) -> None:
    watcher = BuildWatcher()
    executor = docker_executor(plugin_manager=offload.make_plugin_manager(plugins=[("build-watcher", watcher)]))
    config = build_config(image, f"echo {uuid.uuid4().hex} > /watched", options=("--label", "team=data", "--build-arg", "VAR1=one"))
    spec = offload.ImageSpec(image, config["docker"]["build"], config["docker"]["build_options"])
    built_images.append(built_tag(spec))
    result, logs = wait_for(executor, executor.submit(make_request(project, "cat /watched", config), backend="docker"))
    assert result.ok, logs
    assert len(watcher.seen) == 1
    tag, seen_engine, options = watcher.seen[0]
    assert tag == built_tag(spec)
    assert isinstance(seen_engine, docker.DockerClient), "the engine the task's image is built on"
    assert seen_engine.api.base_url == engine.api.base_url
    assert isinstance(options, BuildOptions)
    assert options.labels == (("team", "data"),)
    assert options.buildargs == (("VAR1", "one"),)
    assert engine.images.get(tag).labels["team"] == "data", "offload-docker built it, with those options"


def test_a_backend_made_by_hand_builds_without_hooks(project: Path, image: str, engine: docker.DockerClient, built_images: list[str]) -> None:
    backend = DockerBackend()
    assert backend.context.hook is None
    config = build_config(image, f"echo {uuid.uuid4().hex} > /by-hand")
    spec = offload.ImageSpec(image, config["docker"]["build"])
    built_images.append(built_tag(spec))
    request = make_request(project, "cat /by-hand", config)
    settings, problems = backend.parse_task_config(config, f"task {request.task_id}")
    assert problems == []
    try:
        handle = backend.submit(attrs.evolve(request, settings=settings))
        deadline = time.monotonic() + 120
        while not (status := backend.poll([handle])[0]).state.finished:
            assert time.monotonic() < deadline, "the task did not finish"
            handle = status.handle or handle
            backend.wait([handle], 0.2)
        result = backend.collect(handle)
    finally:
        backend.close()
    assert result.ok, result.error
    assert engine.images.get(built_tag(spec)).labels["offload.managed"] == "true", "built as the default Dockerfile's tag"


def test_the_build_hook_builds_outside_a_task_too(engine: docker.DockerClient, image: str, built_images: list[str]) -> None:
    pm = offload.make_plugin_manager()
    spec = offload.ImageSpec(image=image, build=(f"echo {uuid.uuid4().hex}",), build_options=("--label", "team=data"))
    tag = built_tag(spec)
    built_images.append(tag)
    lines: list[str] = []
    dockerfile = pm.hook.offload_dockerfile(spec=spec)
    assert pm.hook.offload_build_image(spec=spec, dockerfile=dockerfile, tag=tag, log=lines.append, engine=None, options=None) == tag
    assert engine.images.get(tag).labels["offload.managed"] == "true"
    assert engine.images.get(tag).labels["team"] == "data", "options=None: the spec's build_options are parsed"
    assert lines[0] == f"Step 1/4 : FROM {image}", "FROM, RUN, and the LABEL step of the labels"


def test_the_build_hook_leaves_an_engine_it_does_not_know_to_other_plugins(image: str) -> None:
    pm = offload.make_plugin_manager()
    spec = offload.ImageSpec(image=image, build=("true",))
    dockerfile = pm.hook.offload_dockerfile(spec=spec)
    built = pm.hook.offload_build_image(spec=spec, dockerfile=dockerfile, tag=built_tag(spec), log=print, engine="buildkit://remote", options=BuildOptions())
    assert built is None
