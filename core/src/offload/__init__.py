"""offload: run a workflow task's command locally, in Docker or on AWS ECS.

What users and plugin authors use is exported here; every other module is private.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offload.api import Executor
    from offload.backend import Backend, BackendContext, NoConfig
    from offload.config import SystemConfig, structure_strict
    from offload.errors import BackendError, ConfigError, OffloadError, TaskNotFound, UsageError
    from offload.hookspecs import hookimpl, hookspec
    from offload.images import default_dockerfile, image_tag
    from offload.models import Handle, Health, ImageSpec, Problem, Resources, Result, Status, TaskRequest, TaskState
    from offload.plugins import make_plugin_manager
    from offload.selection import Selection
    from offload.serialization import from_dict, from_json, to_dict, to_json
    from offload.session import RunOutcome, run_workflow

__version__ = "0.1.0"

# Imported on first use, so that `offload --version` and plugin discovery stay fast.
_EXPORTS = {
    "Backend": "offload.backend",
    "BackendContext": "offload.backend",
    "BackendError": "offload.errors",
    "ConfigError": "offload.errors",
    "Executor": "offload.api",
    "Handle": "offload.models",
    "Health": "offload.models",
    "ImageSpec": "offload.models",
    "NoConfig": "offload.backend",
    "OffloadError": "offload.errors",
    "Problem": "offload.models",
    "Resources": "offload.models",
    "Result": "offload.models",
    "RunOutcome": "offload.session",
    "Selection": "offload.selection",
    "Status": "offload.models",
    "SystemConfig": "offload.config",
    "TaskNotFound": "offload.errors",
    "TaskRequest": "offload.models",
    "TaskState": "offload.models",
    "UsageError": "offload.errors",
    "hookimpl": "offload.hookspecs",
    "hookspec": "offload.hookspecs",
    "default_dockerfile": "offload.images",
    "from_dict": "offload.serialization",
    "from_json": "offload.serialization",
    "image_tag": "offload.images",
    "make_plugin_manager": "offload.plugins",
    "run_workflow": "offload.session",
    "structure_strict": "offload.config",
    "to_dict": "offload.serialization",
    "to_json": "offload.serialization",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'offload' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Backend",
    "BackendContext",
    "BackendError",
    "ConfigError",
    "Executor",
    "Handle",
    "Health",
    "ImageSpec",
    "NoConfig",
    "OffloadError",
    "Problem",
    "Resources",
    "Result",
    "RunOutcome",
    "Selection",
    "Status",
    "SystemConfig",
    "TaskNotFound",
    "TaskRequest",
    "TaskState",
    "UsageError",
    "__version__",
    "default_dockerfile",
    "from_dict",
    "from_json",
    "hookimpl",
    "hookspec",
    "image_tag",
    "make_plugin_manager",
    "run_workflow",
    "structure_strict",
    "to_dict",
    "to_json",
]
