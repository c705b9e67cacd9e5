"""Health, orphan containers, and a remote engine (tcp://) that cannot see the project."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

import offload
from offload import TaskState
from offload.testing import make_request, wait_for
from offload_docker.backend import DockerBackend
from offload_docker.gc import find_orphans, remove_orphans

Make = Callable[..., offload.Executor]
Started = Callable[[offload.Handle], str]


def test_check_reports_the_engine_version(docker_executor: Make, engine: docker.DockerClient, image: str) -> None:
    health = docker_executor({"images": [image]}).backends.get("docker").check()
    version = engine.version()["Version"]
    assert health.ok
    assert health.summary.startswith(f"docker: engine {version} answers at ")
    assert f"image {image}: present" in health.details


def test_check_reports_a_missing_configured_image(docker_executor: Make, image: str) -> None:
    health = docker_executor({"images": [image, "offload-test/absent:1"]}).backends.get("docker").check()
    assert not health.ok
    assert "1 configured image(s) missing: offload-test/absent:1" in health.summary


def test_check_reports_an_engine_that_does_not_answer(docker_executor: Make, tmp_path: Path) -> None:
    health = docker_executor({"host": f"unix://{tmp_path}/none.sock"}).backends.get("docker").check()
    assert not health.ok
    assert health.summary == (
        f"docker: the Docker Engine at unix://{tmp_path}/none.sock does not answer (no engine socket there); "
        "start it (scripts/setup_docker.sh does) or set docker: to an engine that runs"
    )


def test_gc_finds_and_removes_only_untracked_stopped_containers(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, started: Started
) -> None:
    executor = docker_executor()
    config = {"docker": {"image": image}}
    tracked = executor.submit(make_request(project, "true", config), backend="docker")
    orphan = executor.submit(make_request(project, "true", config), backend="docker")
    running = executor.submit(make_request(project, "sleep 60", config), backend="docker")
    tracked_id, orphan_id, running_id = started(tracked), started(orphan), started(running)
    for container_id in (tracked_id, orphan_id):
        engine.containers.get(container_id).wait(timeout=60)
    known = [tracked_id]
    found = find_orphans(known, project_dir=str(project))
    assert [o.id for o in found] == [orphan_id]
    assert found[0].task_id == orphan.task_id
    assert str(found[0]).startswith(f"{orphan_id[:12]} offload-")
    assert {o.id for o in find_orphans(known, project_dir=str(project), include_running=True)} == {orphan_id, running_id}
    assert remove_orphans(found) == [orphan_id]
    assert find_orphans(known, project_dir=str(project)) == []
    executor.cancel(running, grace=0)
    for handle in (tracked, running):
        wait_for(executor, handle)
    executor.close()
    assert engine.containers.list(all=True, filters={"label": f"offload.project={project}"}) == []


@pytest.fixture
def tcp_engine() -> Iterator[str]:
    """The local engine reached over TCP on loopback, so offload treats it as remote."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect("/var/run/docker.sock")
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


def test_gc_through_the_backend_keeps_tracked_containers(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, started: Started
) -> None:
    executor = docker_executor()
    backend = executor.backends.get("docker")
    assert isinstance(backend, DockerBackend)
    config = {"docker": {"image": image}}
    tracked, orphan = (executor.submit(make_request(project, "true", config), backend="docker") for _ in range(2))
    for handle in (tracked, orphan):
        engine.containers.get(started(handle)).wait(timeout=60)
    lines = backend.collect_garbage([tracked], dry_run=True, project_dir=str(project))
    assert [line.split()[0] for line in lines] == [started(orphan)[:12]]
    assert engine.containers.get(started(orphan)), "a dry run removes nothing"
    assert backend.collect_garbage([tracked], project_dir=str(project)) == lines
    assert backend.collect_garbage([tracked], project_dir=str(project)) == []
    result, _ = wait_for(executor, tracked)
    assert result.ok


def test_adopt_finds_the_container_of_an_interrupted_submission(docker_executor: Make, project: Path, image: str, started: Started) -> None:
    executor = docker_executor()
    request = make_request(project, "echo adopted; exit 2", {"docker": {"image": image}})
    assert executor.adopt(request, "docker") is None
    submitted = executor.submit(request, backend="docker")
    container_id = started(submitted)
    adopted = executor.adopt(request, "docker")
    assert adopted is not None
    assert adopted.state["container"] == container_id
    result, logs = wait_for(executor, adopted)
    assert (result.exit_code, logs) == (2, ["adopted"])


def test_a_remote_engine_gets_the_project_copied_in_and_the_io_dir_out(
    docker_executor: Make, project: Path, image: str, tcp_engine: str, engine: docker.DockerClient, started: Started
) -> None:
    if not os.path.exists("/var/run/docker.sock"):
        pytest.skip("the engine is not on the local socket")
    (project / "sub").mkdir()
    (project / "sub" / "data.txt").write_text("project data\n")
    (project / ".offload" / "journal").mkdir(parents=True)
    (project / ".offload" / "journal" / "other-state").write_text("not shipped\n")
    config = {"docker": {"image": image, "docker": tcp_engine}}
    script = (
        "cat data.txt; test -e ../.offload/workflow/journal/other-state && echo shipped-too-much; "
        'echo written-in-container > ../not-copied-back.txt; mkdir -p "$OFFLOAD_IO_DIR/outputs"; '
        'tr a-z A-Z < data.txt > "$OFFLOAD_IO_DIR/outputs/out.txt"'
    )
    request = make_request(project, script, config, workdir="sub")
    executor = docker_executor()
    handle = executor.submit(request, backend="docker")
    container = engine.api.inspect_container(started(handle))
    assert container["HostConfig"]["Binds"] in (None, []), "nothing is bind-mounted on a remote engine"
    result, logs = wait_for(executor, handle)
    assert result.state is TaskState.SUCCEEDED, logs
    assert logs == ["project data"]
    assert result.output_files == ("outputs/out.txt",)
    assert Path(request.io_path, "outputs", "out.txt").read_text() == "PROJECT DATA\n"
    assert not (project / "not-copied-back.txt").exists(), "only the io directory comes back"
