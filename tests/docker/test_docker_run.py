"""Running tasks on the real engine: options, labels, streaming, errors, timeouts, resume."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

import offload
from offload import TaskState, from_json, to_json
from offload.testing import make_request, wait_for, wait_until_running

Make = Callable[..., offload.Executor]
Started = Callable[[offload.Handle], str]


def labelled(engine: docker.DockerClient, task_id: str) -> list[Any]:
    found: list[Any] = engine.containers.list(all=True, filters={"label": f"offload.task-id={task_id}"})
    return found


def test_containers_carry_offload_labels_and_are_removed_only_when_collected(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, started: Started
) -> None:
    executor = docker_executor()
    request = make_request(project, "echo done", {"docker": {"image": image}}, labels={"run_id": "run-7"})
    handle = executor.submit(request, backend="docker")
    engine.containers.get(started(handle)).wait(timeout=60)
    (container,) = labelled(engine, request.task_id)
    assert container.labels["offload.managed"] == "true"
    assert container.labels["offload.task-id"] == request.task_id
    assert container.labels["offload.run-id"] == "run-7"
    assert container.labels["offload.project"] == str(project)
    assert container.status == "exited", "not auto-removed: its result is not collected yet"
    result, _ = wait_for(executor, handle)
    assert result.ok
    executor.close()  # removal runs in the background once the result is saved; close waits for it
    assert labelled(engine, request.task_id) == []


def test_logs_stream_while_the_task_runs(docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    handle = executor.submit(make_request(project, "echo first; sleep 3; echo second", {"docker": {"image": image}}), backend="docker")
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while "first" not in seen:
        assert time.monotonic() < deadline, "the first line never came"
        (status,) = executor.poll([handle])
        handle = status.handle or handle
        seen += status.logs
        if "first" not in seen:
            time.sleep(0.05)
    assert status.state is TaskState.RUNNING, "the first line arrived while the task ran"
    result, rest = wait_for(executor, handle)
    assert result.ok
    assert rest == ["second"], "no line repeated, none lost"


def test_run_options_reach_the_container(docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    options = ["-m", "64m", "--cpus", "0.5", "-e", "FROM_OPTION=yes", "-e", "OVERRIDDEN=option", "-u", "1234:1234",
               "--ulimit", "nofile=123:456", "--tmpfs", "/scratch:size=1m", "--add-host", "db.test:127.0.0.9",
               "--shm-size", "8m", "--cap-drop", "ALL", "-w", "/scratch"]  # fmt: skip
    script = """
        echo "env=$FROM_OPTION/$OVERRIDDEN"; echo "id=$(id -u):$(id -g)"; echo "pwd=$(pwd)"
        echo "nofile=$(ulimit -n)"; echo "host=$(grep db.test /etc/hosts | cut -f1)"
        echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
        echo "shm=$(df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2)"
        echo "tmpfs=$(grep ' /scratch ' /proc/mounts | cut -d' ' -f3)"
    """
    request = make_request(project, textwrap.dedent(script), {"docker": {"image": image, "run_options": options}}, env={"OVERRIDDEN": "request"})
    result, logs = wait_for(executor, executor.submit(request, backend="docker"))
    assert result.ok, logs
    assert "env=yes/request" in logs, "request env wins over -e, as later -e flags win"
    assert "id=1234:1234" in logs
    assert "pwd=/scratch" in logs
    assert "nofile=123" in logs
    assert "host=127.0.0.9" in logs
    assert f"mem={64 << 20}" in logs
    assert "shm=8192" in logs
    assert "tmpfs=tmpfs" in logs


def test_resources_of_the_request_become_limits(docker_executor: Make, project: Path, image: str, engine: docker.DockerClient) -> None:
    executor = docker_executor()
    request = make_request(project, "sleep 30", {"docker": {"image": image}}, resources=offload.Resources(cpu=0.25, memory=96))
    handle = wait_until_running(executor, executor.submit(request, backend="docker"))
    host = engine.api.inspect_container(handle.state["container"])["HostConfig"]
    executor.cancel(handle, grace=0)
    wait_for(executor, handle)
    assert host["Memory"] == 96 << 20
    assert host["NanoCpus"] == 250_000_000
    assert host["Init"] is True


def test_selinux_relabels_the_project_mount(docker_executor: Make, project: Path, image: str, engine: docker.DockerClient) -> None:
    executor = docker_executor()
    request = make_request(project, "sleep 30", {"docker": {"image": image, "selinux": "z"}})
    handle = wait_until_running(executor, executor.submit(request, backend="docker"))
    binds = engine.api.inspect_container(handle.state["container"])["HostConfig"]["Binds"]
    executor.cancel(handle, grace=0)
    wait_for(executor, handle)
    assert binds == [f"{project}:{project}:rw,z"]


@pytest.fixture
def loopback_server() -> Iterator[int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_host_networking_reaches_a_server_on_loopback(docker_executor: Make, project: Path, image: str, loopback_server: int) -> None:
    executor = docker_executor()
    config = {"docker": {"image": image, "run_options": ["--network", "host"]}}
    request = make_request(project, f"curl -sS --max-time 10 http://127.0.0.1:{loopback_server}/", config)
    result, logs = wait_for(executor, executor.submit(request, backend="docker"))
    assert result.ok, logs
    assert "hello from the host" in logs


def test_a_timeout_escalates_to_kill_when_the_command_ignores_sigterm(docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor({"stop_grace": 1})
    config = {"docker": {"image": image, "run_options": ["--init=false"]}}
    request = make_request(project, "trap '' TERM; echo started; sleep 60 & wait; sleep 60", config, timeout=1.0)
    started = time.monotonic()
    result, logs = wait_for(executor, executor.submit(request, backend="docker"))
    assert result.state is TaskState.FAILED
    assert result.error == f"task {request.task_id}: timed out after 1 s"
    assert time.monotonic() - started < 20
    assert "started" in logs


def test_a_missing_image_fails_the_task_with_one_message_and_leaves_no_container(docker_executor: Make, project: Path, engine: docker.DockerClient) -> None:
    executor = docker_executor()
    missing = "127.0.0.1:9/offload/missing:1"  # a registry address that refuses at once, on loopback
    request = make_request(project, "true", {"docker": {"image": missing}})
    result, _ = wait_for(executor, executor.submit(request, backend="docker"))
    assert result.state is TaskState.FAILED
    assert result.error is not None
    assert result.error.startswith(f"task {request.task_id}: image '{missing}' is not on the engine and could not be pulled: ")
    assert "Traceback" not in result.error
    assert labelled(engine, request.task_id) == []


def test_an_unknown_run_option_stops_the_submit_naming_the_flag(docker_executor: Make, project: Path, image: str) -> None:
    request = make_request(project, "true", {"docker": {"image": image, "run_options": ["--rm"]}})
    with pytest.raises(offload.ConfigError) as raised:
        docker_executor().submit(request)
    assert f"task {request.task_id}: docker.run_options: unknown run option '--rm' (supported: -m/--memory" in str(raised.value)


def test_an_engine_that_does_not_answer_is_one_clear_error(docker_executor: Make, project: Path, image: str, tmp_path: Path) -> None:
    socket_path = tmp_path / "stopped.sock"
    request = make_request(project, "true", {"docker": {"image": image, "docker": f"unix://{socket_path}"}})
    with pytest.raises(offload.BackendError) as raised:
        docker_executor().submit(request)
    assert str(raised.value) == (
        f"task {request.task_id}: the Docker Engine at unix://{socket_path} does not answer (no engine socket there); "
        "start it (scripts/setup_docker.sh does) or set docker: to an engine that runs"
    )
    refused = socket.socket(socket.AF_UNIX)  # a socket file nobody accepts on: refused
    refused.bind(str(socket_path))
    try:
        with pytest.raises(offload.BackendError, match=r"does not answer \(connection refused\)"):
            docker_executor().submit(request)
    finally:
        refused.close()


def test_a_handle_resumes_after_the_container_finished(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, started: Started
) -> None:
    first = docker_executor()
    request = make_request(project, "for i in 1 2 3; do echo line $i; done; echo oops >&2; exit 4", {"docker": {"image": image}})
    saved = to_json(first.submit(request, backend="docker"))
    first.close()
    handle = from_json(saved, offload.Handle)
    engine.containers.get(started(handle)).wait(timeout=60)
    result, logs = wait_for(docker_executor(), handle)
    assert (result.state, result.exit_code) == (TaskState.FAILED, 4)
    assert result.error == f"task {request.task_id}: command exited with code 4"
    # stdout and stderr are separate pipes: the engine orders lines within each, not across them
    assert [line for line in logs if line != "oops"] == ["line 1", "line 2", "line 3"]
    assert logs.count("oops") == 1
    assert result.started_at is not None and result.finished_at is not None and result.finished_at >= result.started_at


def test_collect_twice_gives_the_same_result(docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    handle = executor.submit(make_request(project, "exit 3", {"docker": {"image": image}}), backend="docker")
    result, _ = wait_for(executor, handle)
    assert executor.collect(handle) == result


DRIVER = """
import sys, time, offload
from offload import to_json
from offload.testing import make_request
from pathlib import Path
executor = offload.Executor({"command_executor": {"type": "docker"}})
request = make_request(Path(sys.argv[1]), "echo begun; sleep 4; echo finished; exit 7", {"docker": {"image": sys.argv[2]}})
print(to_json(executor.submit(request, backend="docker")), flush=True)
time.sleep(600)
"""


def test_killing_the_driver_mid_task_then_resuming_collects_the_real_result(project: Path, image: str, docker_executor: Make) -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(project), image], stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None
        saved = driver.stdout.readline()
    finally:
        driver.kill()
        driver.wait()
    handle = from_json(saved, offload.Handle)
    (status,) = docker_executor().poll([handle])
    assert status.state in (TaskState.PENDING, TaskState.RUNNING), "the task outlived its driver"
    result, logs = wait_for(docker_executor(), handle)
    assert result.exit_code == 7
    assert logs == ["begun", "finished"]


def test_env_values_are_not_on_any_command_line(docker_executor: Make, project: Path, image: str, engine: docker.DockerClient) -> None:
    executor = docker_executor()
    secret = "s3cr3t-" + os.urandom(4).hex()
    request = make_request(project, "sleep 30", {"docker": {"image": image}}, env={"API_TOKEN": secret})
    handle = wait_until_running(executor, executor.submit(request, backend="docker"))
    info = engine.api.inspect_container(handle.state["container"])
    executor.cancel(handle, grace=0)
    wait_for(executor, handle)
    assert secret not in json.dumps(info["Config"]["Cmd"]) + json.dumps(info["Args"]) + info["Path"]
    assert f"API_TOKEN={secret}" in info["Config"]["Env"]
