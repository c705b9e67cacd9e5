"""Stopping containers without waiting for them: cancel, the cancel's deadline, timeouts.

``cancel`` sends the stop signal (the image's ``StopSignal``, else SIGTERM) and records
the deadline in a marker; ``poll`` kills a container still running past it. So a run
that cancels many tasks sends every signal at once and they share one grace period
(``container.stop`` waited out each grace in turn: 5 tasks ignoring SIGTERM, 50 s).

A cancel counts only when it reached a running container: a container that had
already exited keeps its real result, and one that exits by itself between the look
and the signal too (the engine answers 409 to the signal). The marker is written
before the signal, so a driver killed in between still finishes the cancel on resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from offload import Handle
from offload_docker import markers, outcome

RUNNING_STATES = ("running", "restarting", "paused", "removing")
Errors = Callable[[str], AbstractContextManager[None]]


def stop_signal(info: dict[str, Any]) -> str:
    """The signal ``docker stop`` would send: the container's ``StopSignal``, else SIGTERM."""
    return str((info.get("Config") or {}).get("StopSignal") or "SIGTERM")


def _signal(api: Any, container_id: str, signal: str) -> bool:
    """Send ``signal``; whether the container was running to receive it."""
    import docker.errors

    try:
        api.kill(container_id, signal=signal)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as e:
        if e.status_code == 409:  # not running (any more)
            return False
        raise
    return True


def cancel(api: Any, errors: Errors, handle: Handle, container_id: str, grace: float) -> None:
    """Ask the container to stop, now; ``poll`` kills it after ``grace`` seconds."""
    import docker.errors

    name = outcome.marker(handle, markers.CANCELLED)
    with errors("looking at the container to stop it"):
        try:
            info = api.inspect_container(container_id)
        except docker.errors.NotFound:
            return
    status = info["State"].get("Status")
    if status == "created":  # never started: it never will
        markers.write(handle.io_path, name, {"deadline": time.time(), "grace": grace})
        return
    if status not in RUNNING_STATES:
        return  # it has finished: its real result stands
    markers.write(handle.io_path, name, {"deadline": time.time() + max(0.0, grace), "grace": grace})
    signal = "SIGKILL" if grace <= 0 else stop_signal(info)
    with errors("stopping the container"):
        if info["State"].get("Paused"):
            try:
                api.unpause(container_id)
            except docker.errors.APIError:
                pass  # unpaused or stopped meanwhile; the signal tells
        if not _signal(api, container_id, signal):
            markers.remove(handle.io_path, name)  # it stopped by itself: its real result stands


def enforce(api: Any, errors: Errors, handle: Handle, stop_grace: float, look_for_cancel: bool = True) -> None:
    """Kill a container past its cancel's deadline; stop one past its timeout.

    Called by ``poll`` for a container that still runs. Works from the handle and the
    markers alone, so a driver that restarts enforces both, without asking the engine.
    ``look_for_cancel=False`` skips reading the cancel marker (the poll reads it for each
    container at most every second, unless it knows of a cancel).
    """
    container_id = str(handle.state["container"])
    now = time.time()
    name = outcome.marker(handle, markers.CANCELLED)
    cancelled = markers.read(handle.io_path, name) if look_for_cancel else None
    if cancelled is not None and not cancelled.get("killed") and now >= float(cancelled.get("deadline", now)):
        with errors("killing the container after its grace period"):
            _signal(api, container_id, "SIGKILL")
        markers.write(handle.io_path, name, {**cancelled, "killed": True})
        return
    timeout, started = handle.state.get("timeout"), handle.state.get("started_at")
    if not timeout or started is None or now < float(started) + float(timeout):
        return
    name = outcome.marker(handle, markers.TIMED_OUT)
    sent = markers.read(handle.io_path, name)
    if sent is None:
        markers.write(handle.io_path, name, {"timeout": timeout})
        with errors("stopping the container at its timeout"):
            _signal(api, container_id, str(handle.state.get("stop_signal") or "SIGTERM"))
    elif not sent.get("killed") and now > float(sent["at"]) + stop_grace:
        with errors("killing the container after its timeout"):
            _signal(api, container_id, "SIGKILL")
        markers.write(handle.io_path, name, {**sent, "killed": True})
