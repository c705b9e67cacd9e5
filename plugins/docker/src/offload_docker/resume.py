"""Picking up a task whose driver died before its container ran.

Two moments leave nothing running and nothing to find for an ordinary resume:

- during the image build or pull, which runs in a thread of the driver: the request is
  kept (private, 0600) beside the task's markers until the container is started, so a
  later driver that polls the handle prepares the image again (a finished image is
  reused: builds are tagged by content) and starts the container, under the same
  submission id, so the task still runs once;
- between creating the container and starting it: the container sits in ``created``.
  It is started then (after copying the project in when the engine is remote), and its
  timeout counts from that start, as the engine records it.
"""

from __future__ import annotations

import os
from typing import Any

from offload import TaskRequest, from_json, to_json
from offload_docker import markers
from offload_docker.container import copy_project_in

REQUEST = "request"


def _path(io_path: str, submission: str) -> str:
    return os.path.join(io_path, markers.MARKER_DIR, markers.name(submission, REQUEST))


def keep_request(request: TaskRequest, submission: str) -> None:
    """Keep ``request`` until its container is started (it holds the task's environment:
    only the owner may read it)."""
    path = _path(request.io_path, submission)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(to_json(request))
    os.replace(tmp, path)


def kept_request(io_path: str, submission: str) -> TaskRequest | None:
    """The request kept for ``submission``, or ``None``. Its ``settings`` are not kept:
    the backend parses its ``executor_config`` again (``DockerBackend.parse_task_config``)."""
    try:
        with open(_path(io_path, submission), encoding="utf-8") as f:
            return from_json(f.read(), TaskRequest)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    except Exception:  # noqa: BLE001 - a damaged file: as if none were kept
        return None


def drop_request(io_path: str, submission: str) -> None:
    try:
        os.remove(_path(io_path, submission))
    except FileNotFoundError:
        pass


def start_created(api: Any, container_id: str, request: TaskRequest | None, remote: bool) -> bool:
    """Start a container left in ``created``; ``False`` when it cannot be (a remote
    engine, and no request to copy the project from)."""
    import docker.errors

    if remote:
        if request is None:
            return False
        copy_project_in(api, container_id, request)
    try:
        api.start(container_id)
    except docker.errors.APIError as e:
        if e.status_code != 304:  # 304: started meanwhile
            raise
    return True
