"""Every hook is documented and tested; the hooks that exist now behave as documented."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

import offload
from offload import Backend, Executor, Handle, ImageSpec, Problem, Result, Status, TaskRequest, TaskState, hookimpl, make_plugin_manager
from offload.executor import hookspecs
from offload.executor.errors import ConfigError, UsageError
from offload.testing.contract import make_request, wait_for

TESTS = Path(__file__).resolve().parents[1]
HOOKSPECS = sorted(
    (name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if getattr(fn, f"{hookspecs.PROJECT}_spec", None) is not None
)
LOCAL = {"command_executor": {"type": "local"}}


def test_the_hookspecs_are_found() -> None:
    names = [name for name, _ in HOOKSPECS]
    assert {"offload_register_backends", "offload_validate_config", "offload_dockerfile", "offload_submit_task"} <= set(names)
    assert all(name.startswith("offload_") for name in names)


# --- (a) documented ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "spec"), HOOKSPECS, ids=[name for name, _ in HOOKSPECS])
def test_every_hookspec_documents_each_argument(name: str, spec: Callable[..., Any]) -> None:
    doc = inspect.getdoc(spec)
    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.strip() and not summary.startswith(":"), f"{name}: the docstring starts with a one-line summary"
    documented = re.findall(r"^:param (\w+):\s*\S", doc, re.M)
    arguments = list(inspect.signature(spec).parameters)
    assert documented == arguments, f"{name}: ':param' lines {documented} do not match the arguments {arguments}"


def _readme_hook_rows() -> dict[str, list[str]]:
    readme = (TESTS.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Hooks", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(offload_\w+)\(([^)]*)\)` \|", section, re.M)
    return {name: [a.strip() for a in args.split(",") if a.strip()] for name, args in rows}


def test_the_readme_hook_table_matches_the_hookspecs() -> None:
    """As datasette's documentation tests do: a hook added, renamed or given another
    argument fails here until the README's table says so."""
    documented = _readme_hook_rows()
    assert sorted(documented) == [name for name, _ in HOOKSPECS], "the README's hook table lists exactly the hookspecs"
    for name, spec in HOOKSPECS:
        assert documented[name] == list(inspect.signature(spec).parameters), f"README: {name}'s arguments"


# --- (b) tested --------------------------------------------------------------------------


def _test_sources() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for path in TESTS.rglob("*.py") if path.resolve() != Path(__file__).resolve()}


@pytest.mark.parametrize("name", [name for name, _ in HOOKSPECS])
def test_every_hook_is_used_by_a_test(name: str) -> None:
    users = [path.relative_to(TESTS) for path, text in _test_sources().items() if re.search(rf"\b{name}\b", text)]
    assert users, f"no test under tests/ (other than {Path(__file__).name}) mentions {name}"


# --- offload_dockerfile and image_tag ----------------------------------------------------


def dockerfile(spec: ImageSpec, plugins: Sequence[Any] = ()) -> str:
    text = make_plugin_manager(plugins, load_entry_points=False).hook.offload_dockerfile(spec=spec)
    assert isinstance(text, str)
    return text


def test_default_dockerfile_is_from_plus_one_run_per_build_line() -> None:
    spec = ImageSpec("azul/zulu-openjdk:8", build=["apt-get -y update", "apt-get -y install software-properties-common"])
    assert dockerfile(spec) == "FROM azul/zulu-openjdk:8\nRUN apt-get -y update\nRUN apt-get -y install software-properties-common\n"


def test_default_dockerfile_without_build_lines_is_only_from() -> None:
    assert dockerfile(ImageSpec("python:3.12-slim")) == "FROM python:3.12-slim\n"


def test_build_options_belong_to_docker_build_not_to_the_dockerfile() -> None:
    spec = ImageSpec("debian:12", build=["true"], build_options=["--build-arg", "var1=test1"])
    assert dockerfile(spec) == "FROM debian:12\nRUN true\n"


def test_blank_build_steps_and_surrounding_whitespace_are_dropped() -> None:
    assert dockerfile(ImageSpec("debian:12", build=["  echo a  ", "", "   \n  "])) == "FROM debian:12\nRUN echo a\n"


MULTI_LINE = "echo one > /tmp/x\ncat /tmp/x \\\n  /dev/null\necho   two"


def _run_steps(text: str, tmp_path: Path) -> list[str]:
    """Run each RUN of a rendered Dockerfile the way docker does: shell form through
    ``/bin/sh -c``, exec form as the JSON argv. Returns the output of each step."""
    outputs = []
    for line in text.splitlines()[1:]:
        assert line.startswith("RUN ")
        body = line[4:]
        argv = json.loads(body) if body.startswith("[") else ["/bin/sh", "-c", body]
        argv = [arg.replace("/tmp/x", str(tmp_path / "x")) for arg in argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        outputs.append(f"{done.returncode}:{done.stdout}")
    return outputs


def test_a_multi_line_build_step_is_one_run_keeping_its_lines_as_commands(tmp_path: Path) -> None:
    text = dockerfile(ImageSpec("debian:12", build=["apt-get update", MULTI_LINE + "\n"]))
    lines = text.splitlines()
    assert len(lines) == 3, "one RUN per step, even a multi-line one"
    assert lines[1] == "RUN apt-get update"
    assert json.loads(lines[2][4:]) == ["/bin/sh", "-ec", MULTI_LINE]
    # run the step: the lines are separate commands, the backslash continues a line
    assert _run_steps("FROM x\n" + lines[2] + "\n", tmp_path) == ["0:one\ntwo\n"]


def test_a_failing_line_of_a_multi_line_step_fails_the_step(tmp_path: Path) -> None:
    text = dockerfile(ImageSpec("debian:12", build=["false\necho reached"]))
    assert _run_steps(text, tmp_path) == ["1:"]


def test_a_plugin_can_replace_the_dockerfile() -> None:
    class Proxy:
        @hookimpl(tryfirst=True)
        def offload_dockerfile(self, spec: ImageSpec) -> str:
            return f"FROM {spec.image}\nENV http_proxy=http://proxy:3128\n" + "".join(f"RUN {b}\n" for b in spec.build)

    spec = ImageSpec("debian:12", build=["apt-get update"])
    assert dockerfile(spec, [Proxy()]) == "FROM debian:12\nENV http_proxy=http://proxy:3128\nRUN apt-get update\n"


def test_a_plugin_returning_none_leaves_the_default() -> None:
    seen: list[ImageSpec] = []

    class Watcher:
        @hookimpl(tryfirst=True)
        def offload_dockerfile(self, spec: ImageSpec) -> None:
            seen.append(spec)

    spec = ImageSpec("debian:12", build=["true"])
    assert dockerfile(spec, [Watcher()]) == "FROM debian:12\nRUN true\n"
    assert seen == [spec]


def test_image_tag_is_stable_across_processes_and_versions() -> None:
    # Pinned: a change here makes every user rebuild every image.
    build = ["apt-get -y update", "apt-get -y install software-properties-common"]
    spec = ImageSpec("azul/zulu-openjdk:8", build=build, build_options=["--build-arg var1=test1"])
    assert offload.image_tag(spec) == "offload-image:fe72b0305344d9f5"
    assert offload.image_tag(ImageSpec("azul/zulu-openjdk:8", build=tuple(build), build_options=("--build-arg var1=test1",))) == offload.image_tag(spec)


def test_image_tag_is_a_valid_docker_reference() -> None:
    tag = offload.image_tag(ImageSpec("debian:12", build=["true"]))
    assert re.fullmatch(r"offload-image:[0-9a-f]{16}", tag)


@pytest.mark.parametrize(
    "other",
    [
        ImageSpec("debian:13", build=["a", "b"], build_options=["--pull"]),
        ImageSpec("debian:12", build=["a", "c"], build_options=["--pull"]),
        ImageSpec("debian:12", build=["b", "a"], build_options=["--pull"]),
        ImageSpec("debian:12", build=["a b"], build_options=["--pull"]),
        ImageSpec("debian:12", build=["a"], build_options=["--pull"]),
        ImageSpec("debian:12", build=["a", "b"], build_options=[]),
        ImageSpec("debian:12", build=["a", "b"], build_options=["--no-cache"]),
        ImageSpec("debian:12", build=["a", "b", ""], build_options=["--pull"]),
    ],
)
def test_image_tag_changes_with_image_build_and_build_options(other: ImageSpec) -> None:
    base = ImageSpec("debian:12", build=["a", "b"], build_options=["--pull"])
    assert offload.image_tag(other) != offload.image_tag(base)


# --- offload_validate_config -------------------------------------------------------------


class NoPrivileged:
    """A site policy: no task may ask Docker for ``--privileged``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, str]] = []

    @hookimpl
    def offload_validate_config(self, backend: Backend, config: Any, task: TaskRequest) -> list[Problem]:
        self.calls.append((backend.name, config, task.task_id))
        options = task.executor_config.get("docker", {}).get("run_options", [])
        if "--privileged" in options:
            return [Problem(f"task {task.task_id}: docker.run_options", "--privileged is forbidden by site policy", fatal=True)]
        return []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    return project


@pytest.fixture
def executors() -> Iterator[list[Executor]]:
    made: list[Executor] = []
    yield made
    for executor in made:
        executor.close()


def executor_with(executors: list[Executor], *plugins: Any, config: dict[str, Any] = LOCAL) -> Executor:
    executor = Executor(config, plugin_manager=make_plugin_manager(plugins))
    executors.append(executor)
    return executor


def test_a_site_policy_adds_a_fatal_problem(project: Path, executors: list[Executor]) -> None:
    policy = NoPrivileged()
    executor = executor_with(executors, policy)
    request = make_request(project, "echo hi", {"docker": {"image": "debian:12", "run_options": ["-m", "1G", "--privileged"]}}, task_id="t-priv")
    selection = executor.select(request)
    assert selection.backend is None
    assert [str(p) for p in selection.fatal] == ["task t-priv: docker.run_options: --privileged is forbidden by site policy"]
    assert selection.attempts[0].backend == "local" and not selection.attempts[0].chosen
    with pytest.raises(ConfigError, match="forbidden by site policy"):
        executor.submit(request)
    assert sorted(Path(request.io_path).iterdir()) == [], "nothing was launched"
    backend_name, config, task_id = policy.calls[0]
    assert (backend_name, task_id) == ("local", "t-priv")
    assert config is executor.backends.get("local").config


def test_the_policy_lets_other_tasks_through(project: Path, executors: list[Executor]) -> None:
    executor = executor_with(executors, NoPrivileged())
    request = make_request(project, "echo hi", {"docker": {"image": "debian:12", "run_options": ["-m", "1G"]}})
    assert executor.select(request).backend == "local"


def test_a_non_fatal_problem_means_not_configured_and_selection_moves_on(project: Path, executors: list[Executor]) -> None:
    class NoGpuHere:
        @hookimpl
        def offload_validate_config(self, backend: Backend, config: Any, task: TaskRequest) -> list[Problem]:
            if task.resources.gpu:
                return [Problem(backend.name, "has no GPU")]
            return []

    executor = executor_with(executors, NoGpuHere(), config={"command_executor": {"order": ["local"]}})
    request = make_request(project, "true", {}, resources=offload.Resources(gpu=1))
    selection = executor.select(request)
    assert (selection.backend, selection.fatal) == (None, ())
    assert selection.attempts[0].reasons == ("local: has no GPU",)
    with pytest.raises(UsageError, match=r"task t-\w+: no backend can run this task \(local: local: has no GPU\)"):
        executor.submit(request)


# --- offload_prepare_request -------------------------------------------------------------


class SiteDefaults:
    @hookimpl
    def offload_prepare_request(self, backend: Backend, request: TaskRequest) -> dict[str, Any]:
        return {"env": {"SITE_TOKEN": f"for-{request.task_id}", "SHARED": "site"}, "labels": {"team": "data"}}


def test_prepare_request_adds_env_that_reaches_a_real_task(project: Path, executors: list[Executor]) -> None:
    executor = executor_with(executors, SiteDefaults())
    request = make_request(project, 'echo "token=$SITE_TOKEN mine=$MINE shared=$SHARED"', {}, task_id="t-env", env={"MINE": "kept", "SHARED": "task"})
    logs: list[str] = []
    result = executor.run(request, on_log=logs.append)
    assert result.ok, logs
    assert "token=for-t-env mine=kept shared=site" in logs


def test_prepare_request_merges_labels_and_replaces_other_fields(project: Path, executors: list[Executor]) -> None:
    class ShortTimeout:
        @hookimpl
        def offload_prepare_request(self, backend: Backend, request: TaskRequest) -> dict[str, Any]:
            return {"timeout": 5.0, "labels": {"owner": backend.name}}

    class Nothing:
        @hookimpl
        def offload_prepare_request(self, backend: Backend, request: TaskRequest) -> None:
            return None

    executor = executor_with(executors, SiteDefaults(), ShortTimeout(), Nothing())
    request = make_request(project, "true", {}, labels={"flow": "f"})
    backend, prepared = executor.prepare(request, "local")
    assert backend == "local"
    assert prepared.labels == {"flow": "f", "team": "data", "owner": "local"}
    assert prepared.timeout == 5.0
    assert request.labels == {"flow": "f"} and request.timeout is None, "the original request is left alone"


# --- offload_submit_task -----------------------------------------------------------------


class SubmitTimer:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, float]] = []

    @hookimpl(wrapper=True)
    def offload_submit_task(self, backend: Backend, request: TaskRequest) -> Generator[None, Handle, Handle]:
        start = time.perf_counter()
        handle = yield
        self.submitted.append((backend.name, handle.task_id, time.perf_counter() - start))
        return handle.with_state(submitted_in=time.perf_counter() - start)


def test_a_submit_wrapper_times_every_submission_and_may_change_the_handle(project: Path, executors: list[Executor]) -> None:
    timer = SubmitTimer()
    executor = executor_with(executors, timer, SiteDefaults())
    request = make_request(project, 'echo "$SITE_TOKEN"', {}, task_id="t-timed")
    handle = executor.submit(request)
    assert [(b, t) for b, t, _ in timer.submitted] == [("local", "t-timed")]
    assert timer.submitted[0][2] >= 0
    assert "submitted_in" in handle.state
    result, logs = wait_for(executor, handle)
    assert result.ok
    assert logs == ["for-t-timed"], "the wrapper saw the prepared request"


def test_a_submit_wrapper_can_refuse_and_nothing_starts(project: Path, executors: list[Executor]) -> None:
    class OfficeHours:
        @hookimpl(wrapper=True)
        def offload_submit_task(self, backend: Backend, request: TaskRequest) -> Generator[None, Handle, Handle]:
            if request.labels.get("heavy"):
                raise UsageError(f"task {request.task_id}: heavy tasks run only at night")
            return (yield)

    executor = executor_with(executors, OfficeHours())
    request = make_request(project, "echo started > started.txt", {}, task_id="t-heavy", labels={"heavy": "yes"})
    with pytest.raises(UsageError, match="heavy tasks run only at night"):
        executor.submit(request)
    time.sleep(0.2)
    assert not (project / "started.txt").exists()
    assert list(Path(request.io_path).iterdir()) == []


def test_a_plugin_can_take_over_submission(project: Path, executors: list[Executor]) -> None:
    class Dispatcher:
        def __init__(self) -> None:
            self.taken: list[str] = []

        @hookimpl(tryfirst=True)
        def offload_submit_task(self, backend: Backend, request: TaskRequest) -> Handle | None:
            if request.labels.get("dry-run"):
                self.taken.append(request.task_id)
                return Handle(backend.name, request.task_id, request.io_path, {"dry": True})
            return None

    dispatcher = Dispatcher()
    executor = executor_with(executors, dispatcher)
    dry = executor.submit(make_request(project, "touch dry.txt", {}, task_id="t-dry", labels={"dry-run": "1"}))
    assert dry.state == {"dry": True}
    assert dispatcher.taken == ["t-dry"]
    real = executor.submit(make_request(project, "touch real.txt", {}, task_id="t-real"))
    assert wait_for(executor, real)[0].ok
    assert (project / "real.txt").exists() and not (project / "dry.txt").exists()


# --- offload_collect_result --------------------------------------------------------------


def test_a_collect_wrapper_sees_and_post_processes_every_result(project: Path, executors: list[Executor]) -> None:
    class Annotate:
        def __init__(self) -> None:
            self.seen: list[Result] = []

        @hookimpl(wrapper=True)
        def offload_collect_result(self, backend: Backend, handle: Handle) -> Generator[None, Result, Result]:
            result = yield
            self.seen.append(result)
            return attrs.evolve(result, store_params={**result.store_params, "collected_by": backend.name})

    annotate = Annotate()
    executor = executor_with(executors, annotate)
    script = 'printf \'{"store_params": {"answer": 42}}\' > "$OFFLOAD_IO_DIR/output.json"; exit 0'
    ok = executor.run(make_request(project, script, {}))
    failed = executor.run(make_request(project, "exit 7", {}))
    assert ok.store_params == {"answer": 42, "collected_by": "local"}
    assert annotate.seen[0].store_params == {"answer": 42}, "the wrapper gets the result with output.json already read"
    assert (failed.state, failed.exit_code, failed.store_params) == (TaskState.FAILED, 7, {"collected_by": "local"})
    assert len(annotate.seen) == 2


def test_a_collect_wrapper_can_turn_a_result_into_a_failure(project: Path, executors: list[Executor]) -> None:
    class QuotaCheck:
        @hookimpl(wrapper=True)
        def offload_collect_result(self, backend: Backend, handle: Handle) -> Generator[None, Result, Result]:
            result = yield
            if len(result.output_files) > 1:
                return attrs.evolve(result, state=TaskState.FAILED, error="too many output files")
            return result

    executor = executor_with(executors, QuotaCheck())
    script = 'mkdir -p "$OFFLOAD_IO_DIR/outputs" && touch "$OFFLOAD_IO_DIR/outputs/a" "$OFFLOAD_IO_DIR/outputs/b"'
    result = executor.run(make_request(project, script, {}))
    assert (result.state, result.error, result.exit_code) == (TaskState.FAILED, "too many output files", 0)


# --- offload_register_backends -----------------------------------------------------------


@attrs.frozen
class InlineConfig:
    prefix: str = ""


class InlineBackend(Backend):
    """Runs the command to completion inside ``submit``: the simplest backend there is."""

    name: ClassVar[str] = "inline"
    config_type: ClassVar[type] = InlineConfig

    def submit(self, request: TaskRequest) -> Handle:
        started = time.time()
        done = subprocess.run(list(request.argv), cwd=request.work_path, env=request.env, capture_output=True, text=True, check=False)
        lines = [self.config.prefix + line for line in done.stdout.splitlines()]
        state = {"code": done.returncode, "lines": lines, "started": started, "finished": time.time()}
        return Handle(self.name, request.task_id, request.io_path, state)

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        return [Status(TaskState.SUCCEEDED if h.state["code"] == 0 else TaskState.FAILED, exit_code=h.state["code"], logs=h.state["lines"]) for h in handles]

    def collect(self, handle: Handle) -> Result:
        state = TaskState.SUCCEEDED if handle.state["code"] == 0 else TaskState.FAILED
        return Result(state, exit_code=handle.state["code"], started_at=handle.state["started"], finished_at=handle.state["finished"])

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        pass


class InlinePlugin:
    @hookimpl
    def offload_register_backends(self, register: Callable[[type[Backend]], None]) -> None:
        register(InlineBackend)


def test_a_plugin_registers_a_custom_backend_that_runs_tasks(project: Path, executors: list[Executor]) -> None:
    config = {"command_executor": {"type": "inline", "inline": {"prefix": "> "}}}
    executor = executor_with(executors, InlinePlugin(), config=config)
    assert executor.pm.backends.get("inline") is InlineBackend
    request = make_request(project, 'echo "$WHO"; printf \'{"export_params": {"k": "v"}}\' > "$OFFLOAD_IO_DIR/output.json"', {}, env={"WHO": "inline"})
    assert executor.select(request).backend == "inline"
    logs: list[str] = []
    result = executor.run(request, on_log=logs.append)
    assert logs == ["> inline"]
    assert result.ok and result.export_params == {"k": "v"}, "the core's default collect reads output.json for any backend"
    assert result.duration is not None
    assert executor.run(make_request(project, "exit 4", {})).exit_code == 4


def test_a_custom_backend_section_is_checked_by_its_config_type(executors: list[Executor]) -> None:
    config = {"command_executor": {"type": "inline", "inline": {"prefix": ["x"], "zz": 1}}}
    with pytest.raises(ConfigError) as e:
        executor_with(executors, InlinePlugin(), config=config)
    assert sorted(str(p) for p in e.value.problems) == [
        "(config): command_executor.inline.prefix: must be a string, got ['x']",
        "(config): command_executor.inline: unknown key 'zz' (known keys: prefix)",
    ]


def test_without_the_plugin_the_backend_is_unknown(executors: list[Executor]) -> None:
    with pytest.raises(ConfigError, match=r"command_executor.type: unknown backend 'inline'"):
        executor_with(executors, config={"command_executor": {"type": "inline"}})
