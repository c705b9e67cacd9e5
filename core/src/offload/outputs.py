"""Reading what a task left in its io directory: ``output.json`` and output files."""

from __future__ import annotations

import json
import os
from typing import Any

import attrs

from offload.models import Result, TaskState

OUTPUT_FILE = "output.json"
OUTPUTS_DIR = "outputs"


def read_outputs(result: Result, io_path: str) -> Result:
    """``result`` completed with the params, error and files the task wrote.

    ``output.json`` holds ``store_params``, ``export_params`` and ``error`` (Digdag's
    names). An error reported there fails the task even when it exited 0. An
    ``output.json`` that is not JSON is an error of the task, not of offload.
    """
    changes: dict[str, Any] = {}
    path = os.path.join(io_path, OUTPUT_FILE)
    data: object = None
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            data = {"error": {"message": f"output.json is not valid JSON: {e}"}}
    if isinstance(data, dict):
        store = data.get("store_params") or {}
        export = data.get("export_params") or {}
        if isinstance(store, dict):
            changes["store_params"] = {**result.store_params, **store}
        if isinstance(export, dict):
            changes["export_params"] = {**result.export_params, **export}
        error = data.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            kind = error.get("class") if isinstance(error, dict) else None
            text = f"{kind}: {message}" if kind else str(message)
            changes["error"] = text
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
