"""``run_options`` / ``build_options`` parsing and the ``docker:`` keys' checks (no engine needed)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import offload
from offload_docker.backend import DockerBackend
from offload_docker.config import TaskSettings
from offload_docker.options import RUN_FLAGS, GpuRequest, parse_build_options, parse_bytes, parse_run_options


def request(docker: Any = None, **fields: Any) -> offload.TaskRequest:
    config = {} if docker is None else {"docker": docker}
    return offload.TaskRequest(task_id="t1", argv=["true"], project_dir="/p", executor_config=config, **fields)


def parse(docker: Any = None) -> tuple[TaskSettings | None, list[offload.Problem]]:
    """The backend's parse of a task's ``docker:`` section (``None``: the task sets none)."""
    return DockerBackend().parse_task_config({} if docker is None else {"docker": docker}, "task t1")


def forced_docker() -> offload.Executor:
    return offload.Executor({"command_executor": {"type": "docker"}})


def test_every_required_flag_is_understood() -> None:
    options, problems = parse_run_options(
        [
            "-m", "1G", "--cpus", "1.5", "--cpu-shares", "512", "-e", "A=1", "--env=B=two words",
            "-v", "/data:/data:ro", "--network", "host", "-u", "1000:1000", "--shm-size", "64m",
            "--ulimit", "nofile=1024:2048", "--cap-add", "SYS_PTRACE", "--cap-drop", "NET_RAW",
            "--add-host", "db:127.0.0.1", "--dns", "127.0.0.53", "--gpus", "all", "--privileged",
            "-w", "/tmp", "--tmpfs", "/run:size=8m", "--init",
        ]
    )  # fmt: skip
    assert problems == []
    assert options.mem_limit == 1 << 30
    assert options.nano_cpus == 1_500_000_000
    assert options.cpu_shares == 512
    assert options.environment == (("A", "1"), ("B", "two words"))
    assert options.binds == ("/data:/data:ro",)
    assert options.network_mode == "host"
    assert options.user == "1000:1000"
    assert options.shm_size == 64 << 20
    assert options.ulimits == (("nofile", 1024, 2048),)
    assert options.cap_add == ("SYS_PTRACE",)
    assert options.cap_drop == ("NET_RAW",)
    assert options.extra_hosts == (("db", "127.0.0.1"),)
    assert options.dns == ("127.0.0.53",)
    assert options.gpus == GpuRequest(count=-1)
    assert options.privileged is True
    assert options.working_dir == "/tmp"
    assert options.tmpfs == (("/run", "size=8m"),)
    assert options.init is True


@pytest.mark.parametrize(
    "items",
    [["-m", "512m"], ["-m 512m"], ["--memory=512m"], ["-m512m"], ["--memory", "512M"], ["-m", "0.5g"]],
)
def test_a_flag_and_its_value_may_be_written_in_every_docker_cli_form(items: list[str]) -> None:
    options, problems = parse_run_options(items)
    assert problems == []
    assert options.mem_limit == 512 << 20


def test_repeated_flags_add_up_and_env_without_value_is_kept_for_submit() -> None:
    options, problems = parse_run_options(["-e", "A=1", "-e", "FROM_DRIVER", "--dns", "1.1.1.1", "--dns", "8.8.8.8"])
    assert problems == []
    assert options.environment == (("A", "1"), ("FROM_DRIVER", None))
    assert options.dns == ("1.1.1.1", "8.8.8.8")


def test_boolean_flags_take_an_explicit_value_too() -> None:
    options, problems = parse_run_options(["--init=false", "--privileged=false"])
    assert problems == []
    assert options.init is False
    assert options.privileged is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", GpuRequest(count=2)), ('"device=0,2"', GpuRequest(device_ids=("0", "2"))), ("count=all", GpuRequest(count=-1))],
)
def test_gpus(value: str, expected: GpuRequest) -> None:
    options, problems = parse_run_options(["--gpus", value])
    assert problems == []
    assert options.gpus == expected


def test_an_unknown_flag_is_named_with_every_supported_one() -> None:
    _, problems = parse_run_options(["--rm", "-m", "1G", "--detach"])
    assert len(problems) == 2
    assert problems[0].startswith("unknown run option '--rm' (supported: -m/--memory, --cpus,")
    assert "'--detach'" in problems[1]
    for flag in RUN_FLAGS:
        assert flag.label in problems[0]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["-m"], "-m needs a value"),
        (["-m", "lots"], "-m: invalid size 'lots'"),
        (["--cpus", "0"], "--cpus: the number of CPUs must be positive"),
        (["--cpus", "x"], "--cpus: invalid number of CPUs 'x'"),
        (["--cpu-shares", "-2"], "--cpu-shares: must be a whole number"),
        (["--ulimit", "nofile"], "--ulimit: invalid ulimit 'nofile'"),
        (["-v", "/only-one"], "-v: invalid volume '/only-one'"),
        (["--add-host", "nohost"], "--add-host: invalid host entry 'nohost'"),
        (["--tmpfs", "run"], "--tmpfs: invalid tmpfs 'run'"),
        (["--gpus", "some"], "--gpus: invalid --gpus 'some'"),
        (["--privileged=maybe"], "--privileged: must be true or false"),
        (["python:3.11"], "unexpected argument 'python:3.11'"),
    ],
)
def test_bad_values_are_reported_with_the_flag(items: list[str], message: str) -> None:
    _, problems = parse_run_options(items)
    assert len(problems) == 1
    assert problems[0].startswith(message)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "b", "k", "kb", "m", "M", "g", "GiB"]))
def test_sizes_use_binary_units(number: int, unit: str) -> None:
    factor = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "GiB": 1 << 30}[unit]
    assert parse_bytes(f"{number}{unit}") == number * factor


def test_build_options() -> None:
    options, problems = parse_build_options(
        ["--build-arg var1=test1", "--build-arg", "FROM_ENV", "--no-cache", "--pull", "--network", "host", "--label", "team=data", "--rm", "-m", "1g"]
    )
    assert problems == []
    assert options.buildargs == (("var1", "test1"), ("FROM_ENV", None))
    assert options.nocache and options.pull
    assert options.network_mode == "host"
    assert options.labels == (("team", "data"),)
    assert options.memory == 1 << 30


def test_an_unknown_build_option_is_named() -> None:
    _, problems = parse_build_options(["--sqash"])
    assert problems == [problems[0]]
    assert problems[0].startswith("unknown build option '--sqash' (supported: --build-arg, --no-cache,")


def test_no_docker_keys_or_no_image_means_not_configured_so_selection_falls_back() -> None:
    for docker in (None, {"run_options": ["-m", "1G"]}):
        settings, problems = parse(docker)
        assert settings is None
        assert problems and not any(p.fatal for p in problems)
    executor = offload.Executor({"command_executor": {"order": ["docker", "local"]}})
    for task in (request(), request({"run_options": ["-m", "1G"]})):
        selection = executor.select(task)
        assert selection.backend == "local"
        assert selection.attempts[0].backend == "docker" and not selection.attempts[0].chosen


def test_a_configured_task_is_usable() -> None:
    settings, problems = parse({"image": "debian:12", "run_options": ["-m", "1G"], "selinux": True})
    assert problems == []
    assert isinstance(settings, TaskSettings)
    assert settings.image == "debian:12" and settings.run.mem_limit == 1 << 30 and settings.relabel == "Z"


def test_selection_hands_the_parsed_settings_on() -> None:
    selection = offload.Executor({"command_executor": {"order": ["docker", "local"]}}).select(request({"image": "debian:12"}))
    assert selection.backend == "docker"
    assert isinstance(selection.settings, TaskSettings) and selection.settings.image == "debian:12"


@pytest.mark.parametrize(
    ("docker", "where", "message"),
    [
        ({"image": "x", "run_options": ["--rm"]}, "task t1: docker.run_options", "unknown run option '--rm'"),
        ({"image": "x", "build_options": ["--sqash"]}, "task t1: docker.build_options", "unknown build option '--sqash'"),
        ({"image": "x", "build_options": ["--secret", "id=a"]}, "task t1: docker.build_options", "build option '--secret' cannot be used"),
        ({"image": "x", "imag": "y"}, "task t1: docker", "unknown key 'imag'"),
        ({"image": "x", "pull_always": "sometimes"}, "task t1: docker.pull_always", "must be true or false"),
        ({"image": "x", "selinux": "maybe"}, "task t1: docker.selinux", "must be true, false, z or Z"),
        ({"image": "x", "docker": "http2://engine"}, "task t1: docker.docker", "unsupported engine URL scheme 'http2'"),
        ({"image": "x", "run_options": "-m"}, "task t1: docker.run_options", "-m needs a value"),
        ("debian:12", "task t1: docker", "must be a mapping"),
    ],
)
def test_a_wrong_docker_config_is_fatal_and_says_where(docker: Any, where: str, message: str) -> None:
    settings, problems = parse(docker)
    assert settings is None
    assert problems, "expected a problem"
    assert all(p.fatal for p in problems)
    assert problems[0].where == where
    assert problems[0].message.startswith(message)


@pytest.mark.parametrize(("value", "relabel"), [(True, "Z"), ("true", "Z"), (False, ""), ("z", "z"), ("Z", "Z")])
def test_selinux_values(value: Any, relabel: str) -> None:
    settings, problems = parse({"image": "x", "selinux": value})
    assert problems == []
    assert settings is not None and settings.relabel == relabel


@pytest.mark.parametrize(
    ("value", "engine"),
    [
        ("docker", None),
        ("/usr/local/bin/docker", None),
        ("unix:///run/user/1000/docker.sock", "unix:///run/user/1000/docker.sock"),
        ("tcp://127.0.0.1:2375", "tcp://127.0.0.1:2375"),
        ("ssh://me@build-host", "ssh://me@build-host"),
    ],
)
def test_the_docker_key_selects_the_engine(value: str, engine: str | None) -> None:
    settings, problems = parse({"image": "x", "docker": value})
    assert problems == []
    assert settings is not None and settings.engine == engine


def test_a_wrong_docker_config_stops_selection_with_every_problem() -> None:
    executor = offload.Executor({"command_executor": {"order": ["docker", "local"]}})
    selection = executor.select(request({"image": "x", "run_options": ["--rm"], "selinux": "maybe"}))
    assert selection.backend is None
    assert [p.where for p in selection.fatal] == ["task t1: docker.selinux", "task t1: docker.run_options"]
    with pytest.raises(offload.ConfigError, match=r"task t1: docker.selinux: must be true, false, z or Z"):
        selection.check()


def test_submit_to_docker_refuses_a_task_without_docker_config_with_the_reason() -> None:
    with pytest.raises(offload.ConfigError, match=r"task t1: docker: not configured"):
        forced_docker().submit(request(), backend="docker")


def test_with_type_docker_a_task_without_docker_config_runs_locally_as_in_digdag() -> None:
    selection = forced_docker().select(request())
    assert selection.backend == "local" and not selection.fatal
    assert [(a.backend, a.chosen) for a in selection.attempts] == [("docker", False), ("local", True)]
    assert selection.attempts[0].reasons == ("task t1: docker: not configured for this task (no docker: keys)",)
    assert "falls back to local, as in Digdag" in selection.attempts[1].reasons[0]


def test_submit_outside_an_executor_says_the_settings_are_missing() -> None:
    with pytest.raises(offload.BackendError, match=r"task t1: docker: request.settings is not set: submit through offload.Executor"):
        DockerBackend().submit(request({"image": "debian:12"}))
