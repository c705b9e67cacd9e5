"""Reading what a task left in its io directory: ``output.json`` and output files."""

from __future__ import annotations

import json
import os
from typing import Any

import attrs

from offload.executor.models import Result, TaskState

OUTPUT_FILE = "output.json"
OUTPUTS_DIR = "outputs"


def read_outputs(result: Result, io_path: str) -> Result:
    """``result`` completed with the params, error and files the task wrote.

    ``output.json`` holds ``store_params``, ``export_params``, ``subtask_config`` and
    ``error`` (Digdag's names). An error reported there fails the task even when it exited 0. An
    ``output.json`` that is not JSON is an error of the task, not of offload.
    """
    changes: dict[str, Any] = {}
    path = os.path.join(io_path, OUTPUT_FILE)
    data: object = None
    error: object = None
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            error = f"output.json is not valid JSON: {e}"
        else:
            if not isinstance(data, dict):
                error = f"output.json must hold a JSON object, got {_json_type(data)}"
    if isinstance(data, dict):
        for field in ("store_params", "export_params", "subtask_config"):
            params = data.get(field)
            if params is None:
                continue
            if isinstance(params, dict):
                changes[field] = {**getattr(result, field), **params}
            else:
                error = f"output.json: {field} must be a JSON object, got {_json_type(params)}"
        if data.get("error"):
            error = data["error"]
    if error:
        changes["error"] = _error_text(error)
        if result.state is TaskState.SUCCEEDED:
            changes["state"] = TaskState.FAILED
            changes["exit_code"] = result.exit_code if result.exit_code else 1
    out_dir = os.path.join(io_path, OUTPUTS_DIR)
    if os.path.isdir(out_dir):
        files = []
        for root, _dirs, names in os.walk(out_dir):
            for name in names:
                files.append(os.path.relpath(os.path.join(root, name), io_path))
        changes["output_files"] = tuple(sorted(files))
    return attrs.evolve(result, **changes) if changes else result


def _error_text(error: object) -> str:
    """Digdag's ``{"message": ..., "class": ...}`` (or a plain string) as one line of text."""
    if not isinstance(error, dict):
        return str(error)
    message = error.get("message")
    kind = error.get("class")
    if kind and message:
        return f"{kind}: {message}"
    return str(message or kind or error)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else type(value).__name__
