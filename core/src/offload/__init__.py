"""offload: run a workflow task's command locally, in Docker or on AWS ECS.

What users and plugin authors use is exported here; every other module is private.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offload.executor.backend import Backend, BackendContext, NoConfig
    from offload.executor.config import SystemConfig, named_section, structure_strict
    from offload.executor.errors import BackendError, ConfigError, OffloadError, TaskNotFound, UsageError
    from offload.executor.executor import Executor
    from offload.executor.hookspecs import hookimpl, hookspec
    from offload.executor.images import default_dockerfile, image_tag
    from offload.executor.loglines import LOG_SPLIT_MARKER, MAX_LOG_LINE, utf8_boundary
    from offload.executor.models import Handle, Health, ImageSpec, Problem, Resources, Result, Status, TaskRequest, TaskState
    from offload.executor.plugins import make_plugin_manager
    from offload.executor.selection import Selection
    from offload.executor.serialization import from_dict, from_json, to_dict, to_json
    from offload.executor.storage import PUT_CONTENT_TYPE, Storage, StorageConfig, StorageError, StorageNotFound, StoredObject
    from offload.executor.storages import Storages
    from offload.workflow.session import RunOutcome, run_workflow

__version__ = "0.1.0"

# Imported on first use, so that `offload --version` and plugin discovery stay fast.
_EXPORTS = {
    "Backend": "offload.executor.backend",
    "BackendContext": "offload.executor.backend",
    "BackendError": "offload.executor.errors",
    "ConfigError": "offload.executor.errors",
    "Executor": "offload.executor.executor",
    "Handle": "offload.executor.models",
    "LOG_SPLIT_MARKER": "offload.executor.loglines",
    "MAX_LOG_LINE": "offload.executor.loglines",
    "Health": "offload.executor.models",
    "ImageSpec": "offload.executor.models",
    "NoConfig": "offload.executor.backend",
    "OffloadError": "offload.executor.errors",
    "Problem": "offload.executor.models",
    "Resources": "offload.executor.models",
    "Result": "offload.executor.models",
    "RunOutcome": "offload.workflow.session",
    "Selection": "offload.executor.selection",
    "Status": "offload.executor.models",
    "Storage": "offload.executor.storage",
    "StorageConfig": "offload.executor.storage",
    "StorageError": "offload.executor.storage",
    "StorageNotFound": "offload.executor.storage",
    "Storages": "offload.executor.storages",
    "StoredObject": "offload.executor.storage",
    "PUT_CONTENT_TYPE": "offload.executor.storage",
    "SystemConfig": "offload.executor.config",
    "TaskNotFound": "offload.executor.errors",
    "TaskRequest": "offload.executor.models",
    "TaskState": "offload.executor.models",
    "UsageError": "offload.executor.errors",
    "hookimpl": "offload.executor.hookspecs",
    "hookspec": "offload.executor.hookspecs",
    "default_dockerfile": "offload.executor.images",
    "from_dict": "offload.executor.serialization",
    "from_json": "offload.executor.serialization",
    "image_tag": "offload.executor.images",
    "make_plugin_manager": "offload.executor.plugins",
    "run_workflow": "offload.workflow.session",
    "structure_strict": "offload.executor.config",
    "named_section": "offload.executor.config",
    "to_dict": "offload.executor.serialization",
    "to_json": "offload.executor.serialization",
    "utf8_boundary": "offload.executor.loglines",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'offload' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "LOG_SPLIT_MARKER",
    "MAX_LOG_LINE",
    "PUT_CONTENT_TYPE",
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
    "Storage",
    "StorageConfig",
    "StorageError",
    "StorageNotFound",
    "Storages",
    "StoredObject",
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
    "named_section",
    "run_workflow",
    "structure_strict",
    "to_dict",
    "to_json",
    "utf8_boundary",
]
