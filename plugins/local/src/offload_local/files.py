"""The files a local task keeps in its io directory: log, exit code and stop markers."""

from __future__ import annotations

import contextlib
import json
import os
import time

LOG = "offload-local.log"
EXIT = "offload-local.exit"
CANCEL = "offload-local.cancel"
TIMEOUT = "offload-local.timeout"
PID = "offload-local.pid"


def path(io_path: str, name: str) -> str:
    """``io_path`` (normalised, as ``TaskRequest.io_path`` is) joined with ``name``."""
    return f"{io_path}/{name}"


def listing(io_path: str) -> frozenset[str]:
    """The names in the io directory: one look tells which of the files are there."""
    try:
        return frozenset(os.listdir(io_path))
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


def exists(io_path: str, name: str) -> bool:
    return os.path.exists(path(io_path, name))


def remove(io_path: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path(io_path, name))


def read_exit_code(io_path: str) -> int | None:
    """The recorded exit code; ``None`` until the wrapper has written the whole line."""
    return read_exit(io_path)[0]


def read_exit(io_path: str) -> tuple[int | None, float | None]:
    """The recorded exit code (``None`` until its whole line is written) and when the
    file was written (see :func:`exit_stamp`; ``None`` when there is none), from one open."""
    try:
        fd = os.open(path(io_path, EXIT), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    try:
        stamp = os.fstat(fd).st_mtime
        data = os.read(fd, 64)
    finally:
        os.close(fd)
    if not data.endswith(b"\n"):
        return None, stamp
    try:
        return int(data), stamp
    except ValueError:
        return None, stamp


def write_exit_code(io_path: str, code: int) -> None:
    with open(path(io_path, EXIT), "w", encoding="ascii") as f:
        f.write(f"{code}\n")


def read_pid(io_path: str) -> int | None:
    try:
        with open(path(io_path, PID), encoding="ascii") as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def started_at(io_path: str) -> float:
    try:
        return os.stat(path(io_path, PID)).st_mtime
    except FileNotFoundError:
        return time.time()


def exit_stamp(io_path: str) -> float | None:
    """When the exit code was written, by the file system's clock; ``None`` before.

    That clock is coarse (Linux stamps files from the clock tick, up to 10 ms behind
    ``time.time()``), so it is no match for a start time taken with ``time.time()``.
    """
    try:
        return os.stat(path(io_path, EXIT)).st_mtime
    except FileNotFoundError:
        return None


def write_text(io_path: str, name: str, text: str, deadline: float | None = None) -> None:
    """Write a marker atomically; ``deadline`` is when the group gets SIGKILL."""
    tmp = path(io_path, name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"text": text, "deadline": deadline}, f)
    os.replace(tmp, path(io_path, name))


def _read_marker(io_path: str, name: str) -> dict[str, object]:
    try:
        with open(path(io_path, name), encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_text(io_path: str, name: str) -> str:
    return str(_read_marker(io_path, name).get("text", ""))


def deadline(io_path: str, name: str) -> float | None:
    value = _read_marker(io_path, name).get("deadline")
    return float(value) if isinstance(value, (int, float)) else None
