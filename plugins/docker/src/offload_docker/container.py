"""Creating and starting a task's container, and moving files for a remote engine.

On a local engine the project is bind-mounted at the same absolute path (as Digdag's
``-v proj:proj``), so paths in the request mean the same inside and out. A remote engine
cannot see the driver's disk: the project is copied in with the archive API before the
container starts, and the io directory copied back when the result is collected.
"""

from __future__ import annotations

import io
import os
import re
from typing import TYPE_CHECKING, Any

from offload import TaskRequest
from offload_docker.config import DockerSystemConfig, TaskSettings

if TYPE_CHECKING:
    import tarfile

    import docker.types

MIB = 1 << 20
LABEL_PREFIX = "offload."
MANAGED = "offload.managed"
TASK_ID = "offload.task-id"
RUN_ID = "offload.run-id"
SUBMISSION = "offload.submission"
PROJECT = "offload.project"


def labels_for(request: TaskRequest, submission: str) -> dict[str, str]:
    """``offload.*`` labels: managed, task id, submission and every request label.

    A request label ``run_id`` (or ``run-id``) becomes ``offload.run-id``; keys that
    already start with ``offload.`` are kept as they are.
    """
    labels = {}
    for key, value in request.labels.items():
        name = key if key.startswith(LABEL_PREFIX) else LABEL_PREFIX + key.replace("_", "-")
        labels[name] = str(value)
    labels.update({MANAGED: "true", TASK_ID: request.task_id, SUBMISSION: submission, PROJECT: request.project_dir})
    return labels


def container_name(task_id: str, submission: str) -> str:
    """A readable, valid and unique name: ``offload-<task id>-<submission>``."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", task_id).strip("-.")[:48] or "task"
    return f"offload-{safe}-{submission[:8]}"


def environment(request: TaskRequest, settings: TaskSettings) -> dict[str, str]:
    """``-e`` values from ``run_options`` first, then the request's (which win, as later
    ``-e`` flags win in Digdag's command line). Passed through the API, never argv."""
    env: dict[str, str] = {}
    for key, value in settings.run.environment:
        if value is not None:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    env.update(request.env)
    return env


def host_config_args(request: TaskRequest, settings: TaskSettings, system: DockerSystemConfig, remote: bool) -> dict[str, Any]:
    """Arguments of ``create_host_config``: mounts, limits and the ``run_options`` flags."""
    import docker.types

    run = settings.run
    binds = list(run.binds)
    if not remote:
        mode = "rw" + (f",{settings.relabel}" if settings.relabel else "")
        binds.insert(0, f"{request.project_dir}:{request.project_dir}:{mode}")
    resources = request.resources
    args: dict[str, Any] = {
        "binds": binds,
        "init": system.init if run.init is None else run.init,
        "privileged": run.privileged,
    }
    memory = run.mem_limit if run.mem_limit is not None else (resources.memory * MIB if resources.memory else None)
    cpus = run.nano_cpus if run.nano_cpus is not None else (int(resources.cpu * 1e9) if resources.cpu else None)
    optional: dict[str, Any] = {
        "mem_limit": memory,
        "nano_cpus": cpus,
        "cpu_shares": run.cpu_shares,
        "network_mode": run.network_mode,
        "shm_size": run.shm_size,
        "ulimits": [docker.types.Ulimit(name=n, soft=s, hard=h) for n, s, h in run.ulimits] or None,
        "cap_add": list(run.cap_add) or None,
        "cap_drop": list(run.cap_drop) or None,
        "extra_hosts": dict(run.extra_hosts) or None,
        "dns": list(run.dns) or None,
        "tmpfs": dict(run.tmpfs) or None,
        "device_requests": _gpu_requests(settings, resources.gpu),
        "pid_mode": run.pid_mode,
        "ipc_mode": run.ipc_mode,
        "userns_mode": run.userns_mode,
        "uts_mode": run.uts_mode,
        "devices": list(run.devices) or None,
    }
    args.update({k: v for k, v in optional.items() if v is not None})
    return args


def _gpu_requests(settings: TaskSettings, gpu: int | None) -> list[docker.types.DeviceRequest] | None:
    import docker.types

    wanted = settings.run.gpus
    if wanted is not None:
        if wanted.device_ids:
            return [docker.types.DeviceRequest(device_ids=list(wanted.device_ids), capabilities=[["gpu"]])]
        return [docker.types.DeviceRequest(count=wanted.count, capabilities=[["gpu"]])]
    if gpu:
        return [docker.types.DeviceRequest(count=gpu, capabilities=[["gpu"]])]
    return None


def create(api: Any, request: TaskRequest, settings: TaskSettings, system: DockerSystemConfig, image: str, submission: str, remote: bool) -> str:
    """Create (not start) the container; returns its id.

    The name holds the submission, so a second create for the same submission (a driver
    killed while its create was on the way, and the next one starting the task again)
    meets the first container: that one is used, and the task still runs once.
    """
    import docker.errors

    host_config = api.create_host_config(**host_config_args(request, settings, system, remote))
    name = container_name(request.task_id, submission)
    try:
        created = api.create_container(
            image=image,
            command=list(request.argv),
            working_dir=settings.run.working_dir or request.work_path,
            environment=environment(request, settings),
            user=settings.run.user,
            labels=labels_for(request, submission),
            name=name,
            host_config=host_config,
            detach=True,
        )
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise
        existing = api.inspect_container(name)
        if (existing.get("Config") or {}).get("Labels", {}).get(SUBMISSION) != submission:
            raise
        return str(existing["Id"])
    return str(created["Id"])


def launch(api: Any, request: TaskRequest, settings: TaskSettings, system: DockerSystemConfig, image: str, submission: str, remote: bool) -> str:
    """Create the container, copy the project in when the engine is remote, start it.

    A container that fails to start is removed, so a bad option leaves nothing behind.
    """
    container_id = create(api, request, settings, system, image, submission, remote)
    try:
        if remote:
            copy_project_in(api, container_id, request)
        api.start(container_id)
    except BaseException:
        try:
            api.remove_container(container_id, force=True, v=True)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise
    return container_id


def _project_tar(request: TaskRequest) -> bytes:
    """The project as a tar rooted at ``/``, leaving out other tasks' state in ``.offload/``."""
    import tarfile

    project = request.project_dir
    io_rel = os.path.normpath(request.io_dir)

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        rel = os.path.relpath("/" + info.name, project)
        if rel == "." or not rel.startswith(".offload"):
            return info
        related = io_rel == rel or io_rel.startswith(rel + os.sep) or rel.startswith(io_rel + os.sep)
        return info if related else None

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        parts = project.strip("/").split("/")
        for depth in range(1, len(parts)):  # parent directories, so the engine makes them
            info = tarfile.TarInfo("/".join(parts[:depth]))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(project, arcname=project.lstrip("/"), filter=keep)
    return buffer.getvalue()


def copy_project_in(api: Any, container_id: str, request: TaskRequest) -> None:
    api.put_archive(container_id, "/", _project_tar(request))


def copy_io_out(api: Any, container_id: str, io_path: str) -> None:
    """Copy the container's io directory over the driver's (files the task wrote win)."""
    import tarfile
    import tempfile

    stream, _ = api.get_archive(container_id, io_path)
    with tempfile.TemporaryFile() as spool:
        for chunk in stream:
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r") as tar:
            tar.extractall(os.path.dirname(io_path), filter="data")
