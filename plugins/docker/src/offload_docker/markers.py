"""Facts about a task kept as small files in its io directory on the driver's machine.

They do not depend on labels or on the container still existing, so a driver that
restarts (or another process holding only the handle) sees that a task was cancelled
or timed out, and a result collected before its container was removed.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

MARKER_DIR = ".offload-docker"
CANCELLED = "cancelled"
TIMED_OUT = "timed-out"
RESULT = "result"


def name(submission: str, kind: str) -> str:
    """Markers are per submission: a rerun of a task in the same io directory starts clean."""
    return f"{submission}.{kind}.json"


def _path(io_path: str, name: str) -> str:
    return os.path.join(io_path, MARKER_DIR, name)


def write(io_path: str, name: str, data: dict[str, Any] | None = None) -> None:
    """Record ``name`` (atomically, so a reader never sees half a file)."""
    path = _path(io_path, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"at": time.time(), **(data or {})}, f)
    os.replace(tmp, path)


def read(io_path: str, name: str) -> dict[str, Any] | None:
    """What was recorded under ``name``, or ``None``."""
    try:
        with open(_path(io_path, name), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def exists(io_path: str, name: str) -> bool:
    return os.path.exists(_path(io_path, name))


def remove(io_path: str, name: str) -> None:
    try:
        os.remove(_path(io_path, name))
    except FileNotFoundError:
        pass
