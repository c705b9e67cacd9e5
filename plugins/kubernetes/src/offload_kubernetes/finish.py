"""Collecting a finished task's result and output, and cancelling a task.

The Job (and with it its pod and ConfigMap) is deleted on collect, once the log has been
read to its end and the io directory is back: never earlier, so no line is lost.
"""

from __future__ import annotations

import time
from typing import Any

from offload import BackendError, Handle, Result, Storage, StorageError, StorageNotFound, TaskState
from offload.remote import extract_archive
from offload_kubernetes import logs
from offload_kubernetes.client import Kube, KubeError
from offload_kubernetes.tracking import delete_job


def _output(kube: Kube, storages: tuple[Storage, Storage] | None, state: dict[str, Any]) -> bytes | None:
    """The io archive the task sent back; ``None`` when it sent none (a task whose pod never ran sent none)."""
    if not state.get("pod"):
        return None
    if state.get("storage"):
        if storages is None:
            raise BackendError("kubernetes: the task's output is in the temporal storage, which the config no longer names (config_storage.out)")
        try:
            return storages[1].get(str(state["output_key"]))
        except StorageNotFound:
            return None
        except StorageError as e:
            raise BackendError(f"kubernetes: cannot download the task's output: {e}") from None
    cursor = logs.LogCursor.from_state(state)
    return logs.inline_output(kube, str(state["namespace"]), str(state["pod"]), cursor, str(state["marker"]))


def collect(kube: Kube, storages: tuple[Storage, Storage] | None, handle: Handle) -> Result:
    state = dict(handle.state)
    final = state.get("final")
    if not final:
        raise BackendError(f"kubernetes: task {handle.task_id} has not finished: poll it until it finishes")
    result_state, code, error = TaskState(final["state"]), final["exit_code"], final["error"]
    data = _output(kube, storages, state)
    if data is not None:
        try:
            extract_archive(data, handle.io_path)
        except Exception as e:  # noqa: BLE001 - a broken archive is the task's problem, reported as such
            raise BackendError(f"kubernetes: the task's output archive cannot be unpacked: {e}") from None
    elif result_state is TaskState.SUCCEEDED:
        result_state = TaskState.FAILED
        error = "the task exited 0 but its io directory did not come back (see the task's log)"
    delete_job(kube, str(state["namespace"]), str(state["job"]))
    if state.get("storage") and storages is not None:
        try:
            storages[0].delete(str(state["input_key"]))
        except StorageError:
            pass  # a lifecycle rule on the prefix takes care of leftovers
    submitted = float(state.get("submitted_at") or time.time())
    started, finished = final.get("started_at") or submitted, final.get("finished_at") or time.time()
    return Result(result_state, exit_code=code, error=error, started_at=started, finished_at=finished)


def cancel(kube: Kube, handle: Handle, grace: float, cancelled: set[str]) -> None:
    """Delete the Job (Foreground: its pod first), and the pod with ``grace`` seconds to stop."""
    state = handle.state
    namespace, uid = str(state["namespace"]), str(state.get("job_uid"))
    cancelled.add(uid)
    seconds = max(0, round(grace))
    delete_job(kube, namespace, str(state["job"]), "Foreground", seconds)
    pods = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": f"controller-uid={uid}"})
    for pod in (pods or {}).get("items") or []:
        try:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": seconds}
            kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}", body=body)
        except KubeError as e:
            if e.status != 404:
                raise
