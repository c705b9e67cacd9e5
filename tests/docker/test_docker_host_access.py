"""Run options that give a container the host: warned about, and refused on request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docker
import pytest

import offload
from offload.testing import make_request, wait_for
from offload_docker.options import parse_run_options
from offload_docker.policy import host_access

ESCAPING = [
    (["--privileged"], "--privileged gives the container every device and capability of the host"),
    (["-v", "/:/host"], "-v /:/host mounts the host's / into the container"),
    (["-v", "/var/run/docker.sock:/var/run/docker.sock"], "mounts the Docker Engine's socket"),
    (["--volume=/run/docker.sock:/d.sock:ro"], "mounts the Docker Engine's socket"),
    (["-v", "/etc/:/host-etc"], "mounts the host's /etc"),
    (["--pid=host"], "--pid=host shares the host's namespace"),
    (["--network", "host"], "--network=host shares the host's namespace"),
    (["--ipc=host"], "--ipc=host shares the host's namespace"),
    (["--userns=host"], "--userns=host shares the host's namespace"),
    (["--uts=host"], "--uts=host shares the host's namespace"),
    (["--cap-add=ALL"], "--cap-add=ALL lets the container act on the host"),
    (["--cap-add", "sys_admin"], "--cap-add=sys_admin lets the container act on the host"),
    (["--cap-add", "CAP_SYS_MODULE"], "--cap-add=CAP_SYS_MODULE lets the container act on the host"),
    (["--device", "/dev/fuse"], "--device=/dev/fuse gives the container a device of the host"),
]


@pytest.mark.parametrize(("options", "phrase"), ESCAPING)
def test_each_host_escaping_option_is_named(options: list[str], phrase: str) -> None:
    run, problems = parse_run_options(options)
    assert problems == []
    found = host_access(run)
    assert len(found) == 1
    assert phrase in found[0]


@pytest.mark.parametrize(
    "options",
    [[], ["-v", "/data:/data:ro"], ["-v", "cache:/root/.cache"], ["--network", "none"], ["--cap-add", "NET_BIND_SERVICE"], ["--pid", "container:x"]],
)
def test_ordinary_options_are_not_flagged(options: list[str]) -> None:
    run, problems = parse_run_options(options)
    assert problems == []
    assert host_access(run) == []


def test_the_engine_socket_of_the_config_counts_too() -> None:
    run, _ = parse_run_options(["-v", "/srv/engine.sock:/e.sock"])
    assert host_access(run) == []
    assert host_access(run, "/srv/engine.sock") == ["-v /srv/engine.sock:/e.sock mounts the Docker Engine's socket into the container"]


def test_new_namespace_and_device_flags_reach_the_container(project: Path, image: str, engine: docker.DockerClient) -> None:
    executor = offload.Executor({"command_executor": {"type": "docker"}})
    try:
        config = {"docker": {"image": image, "run_options": ["--ipc=private", "--uts=host", "--device", "/dev/null:/dev/extra-null"]}}
        request = make_request(project, "test -c /dev/extra-null && echo device-there", config)
        result, logs = wait_for(executor, executor.submit(request, backend="docker"))
    finally:
        executor.close()
    assert result.ok, logs
    assert logs == ["device-there"]


def offload_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offload.workflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


FLOW = """
+mounted:
  docker:
    image: {image}
    run_options: ["-v", "/:/host:ro", "--network", "host"]
  sh>: test -d /host/proc && echo ran-with-the-host
+plain:
  docker:
    image: {image}
  sh>: echo ran-plain
"""


@pytest.fixture
def flow(tmp_path: Path, image: str, engine: docker.DockerClient) -> Path:
    (tmp_path / "flow.dig").write_text(FLOW.format(image=image))
    return tmp_path


def containers_of(engine: docker.DockerClient, project: Path) -> list[object]:
    found: list[object] = engine.containers.list(all=True, filters={"label": f"offload.project={project}"})
    return found


def test_explain_warns_next_to_the_choice_and_run_goes_ahead(flow: Path) -> None:
    explained = offload_cli("explain", "flow.dig", cwd=flow)
    assert explained.returncode == 0, explained.stdout + explained.stderr
    chosen = [line for line in explained.stdout.splitlines() if "docker   chosen" in line]
    assert len(chosen) == 2
    assert "warning: task +flow+mounted: docker.run_options: --network=host shares the host's namespace with the container" in chosen[0]
    assert "warning: task +flow+mounted: docker.run_options: -v /:/host:ro mounts the host's / into the container" in chosen[0]
    assert "command_executor.docker.allow_host_access: false refuses it" in chosen[0]
    assert "warning" not in chosen[1], "an ordinary task gets no warning"
    ran = offload_cli("run", "flow.dig", cwd=flow)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "ran-with-the-host" in ran.stdout


def test_allow_host_access_false_refuses_before_anything_runs(flow: Path, engine: docker.DockerClient) -> None:
    (flow / "offload.yml").write_text("command_executor:\n  docker:\n    allow_host_access: false\n")
    refusal = (
        "flow.dig: +flow+mounted: docker.run_options: -v /:/host:ro mounts the host's / into the container; "
        "refused: command_executor.docker.allow_host_access is false"
    )
    explained = offload_cli("explain", "flow.dig", cwd=flow)
    assert explained.returncode == 2, explained.stdout + explained.stderr
    assert refusal in explained.stdout + explained.stderr
    ran = offload_cli("run", "flow.dig", cwd=flow)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert refusal in ran.stderr
    assert "--network=host shares the host's namespace with the container; refused" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "ran-plain" not in ran.stdout, "nothing is launched, not even the harmless task"
    assert containers_of(engine, flow) == []


def test_the_switch_refuses_a_direct_submit_too(project: Path, image: str, engine: docker.DockerClient) -> None:
    executor = offload.Executor({"command_executor": {"type": "docker", "docker": {"allow_host_access": False}}})
    request = make_request(project, "true", {"docker": {"image": image, "run_options": ["--pid=host"]}})
    try:
        with pytest.raises(offload.ConfigError, match=r"--pid=host shares the host's namespace with the container; refused"):
            executor.submit(request, backend="docker")
    finally:
        executor.close()
    assert containers_of(engine, project) == []
