"""The core's own plugin: the default implementation of every hook."""

from __future__ import annotations

from typing import Any

from offload.executor.backend import Backend
from offload.executor.hookspecs import hookimpl
from offload.executor.models import Handle, ImageSpec, Problem, Result, TaskRequest
from offload.executor.outputs import read_outputs


@hookimpl(trylast=True)
def offload_validate_config(backend: Backend, config: Any, task: TaskRequest) -> list[Problem]:
    return list(backend.usable(task))


@hookimpl(trylast=True)
def offload_dockerfile(spec: ImageSpec) -> str:
    from offload.executor.images import default_dockerfile

    return default_dockerfile(spec)


@hookimpl(trylast=True)
def offload_submit_task(backend: Backend, request: TaskRequest) -> Handle:
    return backend.submit(request)


@hookimpl(trylast=True)
def offload_collect_result(backend: Backend, handle: Handle) -> Result:
    return read_outputs(backend.collect(handle), handle.io_path)
