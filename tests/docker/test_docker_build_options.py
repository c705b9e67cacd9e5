"""``build_options``: every ``docker build`` option of the engine's classic builder reaches the
engine, and one offload cannot pass is a config error saying why (exit 2, nothing run)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

import offload
from offload import TaskState
from offload.testing import make_request, wait_for
from offload_docker.images import build_query
from offload_docker.options import BUILD_FLAGS, REFUSED_BUILD_FLAGS, BuildOptions, parse_build_options

Make = Callable[..., offload.Executor]
MARK = "offload-test.build-options"


def offload_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offload.workflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


# --- parsing and the request to the engine (no engine needed) ---------------------------------


def test_every_classic_builder_option_is_parsed() -> None:
    options, problems = parse_build_options(
        [
            "--ulimit", "nofile=1024:2048", "--ulimit=nproc=100", "--memory-swap", "1g", "-m", "512m",
            "-c", "512", "--cpu-period", "100000", "--cpu-quota=50000", "--cpuset-cpus", "0-1", "--cpuset-mems", "0",
            "--cgroup-parent", "builds", "--cache-from", "a:1,b:2", "--cache-from=c:3", "--squash", "--isolation", "default",
            "-q", "--security-opt", "credentialspec=file://x.json", "--shm-size", "32m", "--target", "base",
            "--platform", "linux/amd64", "--network=host", "--add-host", "db:127.0.0.1", "--pull", "--no-cache",
            "--label", "team=data", "--build-arg", "A=1",
        ]
    )  # fmt: skip
    assert problems == []
    assert options == BuildOptions(
        buildargs=(("A", "1"),),
        nocache=True,
        pull=True,
        quiet=True,
        squash=True,
        network_mode="host",
        labels=(("team", "data"),),
        target="base",
        platform="linux/amd64",
        isolation="default",
        extra_hosts=(("db", "127.0.0.1"),),
        cache_from=("a:1", "b:2", "c:3"),
        security_opt=("credentialspec=file://x.json",),
        shm_size=32 << 20,
        memory=512 << 20,
        memory_swap=1 << 30,
        cpu_shares=512,
        cpu_period=100000,
        cpu_quota=50000,
        cpuset_cpus="0-1",
        cpuset_mems="0",
        cgroup_parent="builds",
        ulimits=(("nofile", 1024, 2048), ("nproc", 100, 100)),
    )


def test_the_build_request_uses_the_engine_api_parameter_names() -> None:
    options, _ = parse_build_options(
        ["--ulimit", "nofile=1024:2048", "--memory-swap=-1", "-m", "64m", "--cpu-period", "100000", "--cpu-quota", "50000",
         "--cpuset-cpus", "0", "--cpuset-mems", "0", "--cgroup-parent", "builds", "--cache-from", "a:1", "--squash", "-q",
         "--isolation", "default", "--security-opt", "x=y", "--add-host", "db:127.0.0.1", "--label", "team=data"]
    )  # fmt: skip
    query = build_query(options, "offload-image:abc", {"A": "1"})
    assert json.loads(query.pop("ulimits")) == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert json.loads(query.pop("labels")) == {"offload.managed": "true", "team": "data"}
    assert json.loads(query.pop("cachefrom")) == ["a:1"]
    assert json.loads(query.pop("buildargs")) == {"A": "1"}
    assert query == {
        "t": "offload-image:abc", "rm": "1", "forcerm": "1", "squash": "1", "q": "1", "isolation": "default",
        "memory": str(64 << 20), "memswap": "-1", "cpuperiod": "100000", "cpuquota": "50000", "cpusetcpus": "0",
        "cpusetmems": "0", "cgroupparent": "builds", "extrahosts": ["db:127.0.0.1"], "securityopt": ["x=y"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["-t", "mine:1"], "build option '-t' cannot be used: offload tags the image itself, as offload-image:<hash"),
        (["--tag=mine:1"], "build option '--tag' cannot be used: offload tags the image itself"),
        (["-f", "Dockerfile.dev"], "build option '-f' cannot be used: offload writes the Dockerfile itself"),
        (["--iidfile", "/tmp/id"], "build option '--iidfile' cannot be used: offload writes no file on the driver"),
        (["--secret", "id=token,src=/tmp/t"], "build option '--secret' cannot be used: it is an option of BuildKit"),
        (["--ssh default"], "build option '--ssh' cannot be used: it is an option of BuildKit"),
        (["-o", "type=local,dest=out"], "build option '-o' cannot be used: it is an option of BuildKit"),
        (["--output=type=tar,dest=x.tar"], "build option '--output' cannot be used: it is an option of BuildKit"),
        (["--cache-to", "type=inline"], "build option '--cache-to' cannot be used: it is an option of BuildKit"),
        (["--progress", "plain"], "build option '--progress' cannot be used: it is an option of BuildKit"),
        (["--allow", "network.host"], "build option '--allow' cannot be used: it is an option of BuildKit"),
        (["--build-context", "src=../src"], "build option '--build-context' cannot be used: it is an option of BuildKit"),
        (["--push"], "build option '--push' cannot be used: it is an option of BuildKit"),
        (["--rm=false"], "--rm: cannot be false: offload always removes a build's intermediate containers"),
        (["--force-rm=false"], "--force-rm: cannot be false: offload always removes"),
        (["--disable-content-trust=false"], "--disable-content-trust: cannot be false: content trust (image signature verification) is done by the docker CLI"),
    ],
)
def test_an_option_offload_cannot_pass_is_one_problem_saying_why(items: list[str], message: str) -> None:
    _, problems = parse_build_options(items)
    assert len(problems) == 1, problems
    assert problems[0].startswith(message)
    if "BuildKit" in message:
        assert problems[0].endswith("and offload builds with the engine's classic builder (the Engine API's POST /build), which cannot take it")


def test_refused_options_are_told_apart_from_unknown_ones() -> None:
    _, problems = parse_build_options(["--secret", "id=a", "--no-such-flag"])
    assert problems[0].startswith("build option '--secret' cannot be used")
    assert problems[1].startswith("unknown build option '--no-such-flag' (supported: --build-arg, --no-cache, --pull, -q/--quiet")
    for flag in BUILD_FLAGS:
        assert flag.label in problems[1]
    for refused in REFUSED_BUILD_FLAGS:
        assert f" {refused.label}," not in problems[1] and not problems[1].endswith(f" {refused.label})")


def test_client_side_and_always_on_options_are_accepted() -> None:
    options, problems = parse_build_options(["--rm", "--force-rm=true", "--compress", "--disable-content-trust"])
    assert problems == []
    assert options == BuildOptions()


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["--ulimit", "nofile=2048:1024"], "--ulimit: invalid ulimit 'nofile=2048:1024': the soft limit 2048 is above the hard limit 1024"),
        (["--memory-swap", "lots"], "--memory-swap: invalid size 'lots'"),
        (["--cpu-period", "-1"], "--cpu-period: must be a whole number"),
        (["-c", "x"], "-c: must be a whole number"),
        (["--squash=maybe"], "--squash: must be true or false"),
    ],
)
def test_bad_values_are_reported_with_the_option(items: list[str], message: str) -> None:
    _, problems = parse_build_options(items)
    assert problems == [problems[0]]
    assert problems[0].startswith(message)


# --- through the engine -----------------------------------------------------------------------


@pytest.fixture
def mark(engine: docker.DockerClient) -> Iterator[str]:
    """A ``--label`` for every image a test builds; those images are removed afterwards."""
    label = f"{MARK}={uuid.uuid4().hex}"
    yield label
    for built in engine.images.list(filters={"label": label}):
        try:
            engine.images.remove(built.id, force=True)
        except docker.errors.APIError:
            pass


def run(executor: offload.Executor, project: Path, image: str, build: list[str], options: list[str], script: str) -> tuple[offload.Result, list[str]]:
    config = {"docker": {"image": image, "build": build, "build_options": options}}
    return wait_for(executor, executor.submit(make_request(project, script, config), backend="docker"))


def test_ulimit_and_the_resource_limits_reach_the_build_steps(docker_executor: Make, project: Path, image: str, mark: str) -> None:
    report = f"""echo {uuid.uuid4().hex}
echo "nofile $(ulimit -Sn) $(ulimit -Hn)" > /report
grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status | tr -s ':\\t' ' ' >> /report
echo "shm $(df -k /dev/shm | tail -n 1 | awk '{{print $2}}')" >> /report
if [ -f /sys/fs/cgroup/cpu.max ]; then
  echo "cgroup 2" >> /report
  echo "cpu $(cat /sys/fs/cgroup/cpu.max)" >> /report
  echo "memory $(cat /sys/fs/cgroup/memory.max)" >> /report
  echo "swap $(cat /sys/fs/cgroup/memory.swap.max 2>/dev/null || echo none)" >> /report
else
  echo "cgroup 1" >> /report
  echo "cpu $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)" >> /report
  echo "memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)" >> /report
  echo "swap $(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null || echo none)" >> /report
fi"""
    options = ["--label", mark, "--ulimit", "nofile=1024:2048", "-m", "64m", "--memory-swap", "96m", "--cpu-period", "100000"]
    options += ["--cpu-quota", "50000", "--cpuset-cpus", "0", "--cpuset-mems", "0", "--shm-size", "32m"]
    result, logs = run(docker_executor(), project, image, [report], options, "cat /report")
    assert result.ok, (result.error, logs)
    start = next(i for i, line in enumerate(logs) if line.startswith("nofile "))  # the task's output, after the build's
    seen = dict(line.split(" ", 1) for line in logs[start:])
    assert seen["nofile"] == "1024 2048"
    assert seen["Cpus_allowed_list"].strip() == "0" and seen["Mems_allowed_list"].strip() == "0"
    assert seen["shm"] == str(32 << 10)
    assert seen["cpu"] == "50000 100000"
    assert seen["memory"] == str(64 << 20)
    swap = {"1": str(96 << 20), "2": str(32 << 20)}[seen["cgroup"]]  # v2 counts swap alone; 2 x memory by default
    assert seen["swap"] in (swap, "none"), "the engine's kernel may account no swap; where it does, it is the limit asked"


def test_labels_build_args_and_ulimits_through_the_cli(tmp_path: Path, image: str, engine: docker.DockerClient, mark: str) -> None:
    marker = uuid.uuid4().hex
    (tmp_path / "flow.dig").write_text(
        f"""
_export:
  docker:
    image: {image}
    build:
      - 'echo "$(ulimit -Sn):$(ulimit -Hn) $GREETING" > /built'
    build_options: ["--ulimit", "nofile=1024:2048", "--label", "{mark}", "--label", "team=data", "--build-arg", "GREETING={marker}"]
+show:
  sh>: cat /built
"""
    )
    done = offload_cli("run", "flow.dig", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"1024:2048 {marker}" in done.stdout
    (built,) = engine.images.list(filters={"label": mark})
    assert built.labels["team"] == "data" and built.labels["offload.managed"] == "true"
    assert built.tags and built.tags[0].startswith("offload-image:")


def test_quiet_keeps_the_build_steps_out_of_the_task_log(docker_executor: Make, project: Path, image: str, mark: str) -> None:
    marker = uuid.uuid4().hex
    result, logs = run(docker_executor(), project, image, [f"echo built {marker} > /q"], ["-q", "--label", mark], "cat /q")
    assert result.ok, (result.error, logs)
    assert logs[-1] == f"built {marker}"
    assert not any(line.startswith("Step ") or "Running in" in line for line in logs), logs


def test_every_add_host_reaches_the_build_steps(docker_executor: Make, project: Path, image: str, mark: str) -> None:
    step = f"echo {uuid.uuid4().hex}; grep -wE 'db|cache' /etc/hosts > /hosts"
    result, logs = run(docker_executor(), project, image, [step], ["--add-host", "db:127.0.0.2", "--add-host=cache:127.0.0.3", "--label", mark], "cat /hosts")
    assert result.ok, (result.error, logs)
    assert [line.split() for line in logs[-2:]] == [["127.0.0.2", "db"], ["127.0.0.3", "cache"]]


class TwoStages:
    """Renders a two-stage Dockerfile, as a site's plugin may: ``--target`` picks a stage."""

    @offload.hookimpl(tryfirst=True)
    def offload_dockerfile(self, spec: offload.ImageSpec) -> str:
        marker = spec.build[0]
        return f"FROM {spec.image} AS first\nRUN echo first {marker} > /stage\nFROM {spec.image} AS second\nRUN echo second {marker} > /stage\n"


def test_target_picks_a_stage(docker_executor: Make, project: Path, image: str, mark: str) -> None:
    executor = docker_executor(plugin_manager=offload.make_plugin_manager(plugins=[("two-stages", TwoStages())]))
    marker = uuid.uuid4().hex
    first, logs = run(executor, project, image, [marker], ["--label", mark, "--target", "first"], "cat /stage")
    assert first.ok, (first.error, logs)
    assert logs[-1] == f"first {marker}"
    last, logs = run(executor, project, image, [marker], ["--label", mark], "cat /stage")
    assert last.ok, (last.error, logs)
    assert logs[-1] == f"second {marker}", "without --target the last stage is built"


def test_cache_from_chooses_the_images_whose_layers_a_build_reuses(docker_executor: Make, project: Path, image: str, mark: str) -> None:
    executor = docker_executor()
    build = [f"echo {uuid.uuid4().hex} > /marker; cat /proc/sys/kernel/random/uuid > /layer"]

    def layer(*options: str) -> str:
        result, logs = run(executor, project, image, build, ["--label", mark, *options], "cat /layer")
        assert result.ok, (result.error, logs)
        return logs[-1]

    built = layer()
    assert layer("--label", "control=1") == built, "by default the engine's local cache is used"
    assert layer("--cache-from", image) != built, "cache only from the base image: the step runs again"
    spec = offload.ImageSpec(image, tuple(build), ("--label", mark))
    assert layer("--cache-from", offload.image_tag(spec, offload.default_dockerfile(spec))) == built


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--squash"], "squash is only supported with experimental mode"),
        (["--isolation", "hyperv"], 'Unsupported isolation: "hyperv"'),
        (["--security-opt", "seccomp=unconfined"], "security options"),
        (["--target", "nope"], "failed to reach build target nope"),
    ],
)
def test_an_option_the_engine_refuses_fails_the_task_with_the_engines_reason(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, mark: str, options: list[str], reason: str
) -> None:
    if options == ["--squash"] and engine.info().get("ExperimentalBuild"):
        pytest.skip("this engine has experimental features: it squashes")
    executor = docker_executor()
    config = {"image": image, "build": [f"echo {uuid.uuid4().hex}"], "build_options": [*options, "--label", mark]}
    request = make_request(project, "echo should not run", {"docker": config})
    result, logs = wait_for(executor, executor.submit(request, backend="docker"))
    assert result.state is TaskState.FAILED
    assert (result.error or "").startswith(f"task {request.task_id}: image build failed at ")
    assert reason in (result.error or "")
    assert "should not run" not in logs
    assert engine.containers.list(all=True, filters={"label": f"offload.task-id={request.task_id}"}) == []


def test_an_option_offload_cannot_pass_exits_2_naming_it_and_why_and_nothing_runs(tmp_path: Path, image: str, engine: docker.DockerClient, mark: str) -> None:
    (tmp_path / "flow.dig").write_text(
        f"""
_export:
  docker:
    image: {image}
    build: ["touch /built"]
    build_options: ["--label", "{mark}", "--ulimit", "nofile=1024:2048", "--secret", "id=token,src=/tmp/token", "-t", "mine:1"]
+first:
  sh>: touch ran
"""
    )
    done = offload_cli("run", "flow.dig", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "+flow+first: docker.build_options: build option '--secret' cannot be used: it is an option of BuildKit (docker buildx)" in done.stderr
    assert "the engine's classic builder (the Engine API's POST /build), which cannot take it" in done.stderr
    assert "+flow+first: docker.build_options: build option '-t' cannot be used: offload tags the image itself" in done.stderr
    assert "id=token" not in done.stderr, "the flag's value is not reported again as a stray argument"
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ran").exists()
    assert engine.images.list(filters={"label": mark}) == [], "nothing was built"
    assert engine.containers.list(all=True, filters={"label": f"offload.project={tmp_path}"}) == [], "nothing was launched"
