"""Polling: the state of every task from one LIST of pods per namespace (and of Jobs when needed).

A poll never GETs a pod or a Job by name: the project's label selects them all at once
(``offload.project``), so the calls per poll do not grow with the number of tasks; the
only other calls are log reads of pods that run or have just ended, chosen, capped and
made a few at a time by :mod:`.schedule`.

The handle remembers the pod it saw first: a pod replaced behind offload's back (deleted
from outside, so the Job made another) fails the task rather than run it twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from offload import Handle, Status, TaskState
from offload_kubernetes import jobspec, logs, podstate, schedule
from offload_kubernetes.client import Kube, KubeError
from offload_kubernetes.config import KubernetesConfig

#: A log read that failed with one of these is tried again later (the API server or the
#: kubelet is busy or restarting: 0 is "not reached"); no line is lost, the cursor stays.
TRANSIENT = {0, 429, 500, 502, 503, 504}
#: A task's key in a poll: its namespace and its Job's uid.
Key = tuple[str, str]


def list_objects(kube: Kube, path: str, project: str) -> list[dict[str, Any]]:
    answer = kube.request("GET", path, query={"labelSelector": f"{jobspec.PROJECT_LABEL}={project}"})
    return list((answer or {}).get("items") or [])


def delete_job(kube: Kube, namespace: str, name: str, policy: str = "Background", grace: int | None = None) -> None:
    body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy}
    if grace is not None:
        body["gracePeriodSeconds"] = grace
    try:
        kube.request("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", body=body)
    except KubeError as e:
        if e.status != 404:
            raise


def _created(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


class Poll:
    """One poll of some handles: the lists it made, and what it found per handle."""

    def __init__(self, kube: Kube, config: KubernetesConfig, cancelled: set[str]) -> None:
        self.kube, self.config, self.cancelled = kube, config, cancelled
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], list[dict[str, Any]]] = {}
        #: The namespaces whose Jobs were listed in this poll.
        self.listed: set[str] = set()
        #: The log reads of this poll: the lines and the cursor after them (``None``: not read now).
        self.reads: dict[Key, tuple[list[str], logs.LogCursor] | None] = {}
        #: How many of the handles' pods run (their logs are followed): the reads' spacing.
        self.running = 0

    def load(self, handles: Sequence[Handle]) -> None:
        """The pods of the handles' projects; their Jobs too when a pod does not tell all.

        A running or finished pod says everything about its task, so the Jobs are listed
        only when a task has no pod (not created yet, or gone) or a pod is being deleted
        (by offload's cancel, or from outside): then the Job tells which."""
        groups: dict[tuple[str, str], set[str]] = {}
        for h in handles:
            groups.setdefault((str(h.state["namespace"]), str(h.state["project"])), set()).add(str(h.state["job_uid"]))
        for (namespace, project), uids in sorted(groups.items()):
            for pod in sorted(list_objects(self.kube, f"/api/v1/namespaces/{namespace}/pods", project), key=_created):
                owner = (pod["metadata"].get("labels") or {}).get("controller-uid", "")
                self.pods.setdefault((namespace, owner), []).append(pod)
            mine = [self.pods.get((namespace, uid), []) for uid in uids]
            if not all(mine) or any(p["metadata"].get("deletionTimestamp") for pods in mine for p in pods):
                self.listed.add(namespace)
                for job in list_objects(self.kube, f"/apis/batch/v1/namespaces/{namespace}/jobs", project):
                    self.jobs[(namespace, job["metadata"]["uid"])] = job

    def _pod(self, state: Mapping[str, Any]) -> dict[str, Any] | None:
        """The task's pod: the one the handle saw first, else the oldest."""
        pods = self.pods.get((str(state["namespace"]), str(state["job_uid"])), [])
        known = state.get("pod_uid")
        return next((p for p in pods if p["metadata"]["uid"] == known), None) if known else (pods[0] if pods else None)

    def read_logs(self, handles: Sequence[Handle]) -> None:
        """Read the logs :func:`.schedule.pick` chooses, ``CONCURRENT_READS`` at a time."""
        now = time.time()
        wants: list[schedule.Want[tuple[Key, str, logs.LogCursor, str, bool]]] = []
        for h in handles:
            pod = self._pod(h.state)
            if pod is None or not (podstate.started(pod) or podstate.terminated(pod)):
                continue
            ended = podstate.terminated(pod)
            if not ended:
                self.running += 1
            cursor = logs.LogCursor.from_state(h.state)
            if not cursor.ended:
                key = (str(h.state["namespace"]), str(h.state["job_uid"]))
                job = (key, pod["metadata"]["name"], cursor, str(h.state["marker"]), ended)
                # A pod being deleted is read first too: its task ends in this poll.
                first = ended or bool(pod["metadata"].get("deletionTimestamp"))
                wants.append(schedule.Want(job, first, float(h.state.get("log_due") or 0)))
        chosen = schedule.pick(wants, now)
        if len(chosen) > 1:
            with ThreadPoolExecutor(min(len(chosen), schedule.CONCURRENT_READS), thread_name_prefix="offload-k8s-log") as pool:
                results = list(pool.map(lambda job: self._read(*job), chosen))
        else:
            results = [self._read(*job) for job in chosen]
        self.reads.update(zip((job[0] for job in chosen), results, strict=True))

    def _read(self, key: Key, pod: str, cursor: logs.LogCursor, marker: str, ended: bool) -> tuple[list[str], logs.LogCursor] | None:
        """The new lines and the cursor after them; the cursor as it was when the container is not
        there (yet or any more: 400, 404); ``None`` when the server could not answer now."""
        try:
            return logs.read(self.kube, key[0], pod, cursor, marker, ended)
        except KubeError as e:
            if e.status in (400, 404):
                return [], cursor
            if e.status in TRANSIENT:
                return None
            raise

    def status(self, handle: Handle) -> Status:
        state = handle.state
        if state.get("final"):
            final = state["final"]
            return Status(TaskState(final["state"]), exit_code=final["exit_code"], reason=final["error"])
        namespace, uid = str(state["namespace"]), str(state["job_uid"])
        job = self.jobs.get((namespace, uid))
        cancelled = uid in self.cancelled or bool(job and job["metadata"].get("deletionTimestamp"))
        pods = self.pods.get((namespace, uid), [])
        if job is None and not pods and namespace in self.listed:
            if cancelled:
                return self._final(handle, [], {}, TaskState.CANCELLED, None, "cancelled")
            why = f"the Job {state['job']} was deleted outside offload before the task finished (or its ttlSecondsAfterFinished passed)"
            return self._final(handle, [], {}, TaskState.FAILED, None, why)
        known = state.get("pod_uid")
        pod = self._pod(state)
        if known and pod is None:
            self._stop(handle)
            why = f"the pod {state.get('pod')} was deleted outside offload"
            return self._final(handle, [], {}, TaskState.CANCELLED if cancelled else TaskState.FAILED, None, "cancelled" if cancelled else why)
        if pod is None:
            return self._not_started(handle, job, None, {})
        updates: dict[str, Any] = {}
        if not known:
            updates.update(pod=pod["metadata"]["name"], pod_uid=pod["metadata"]["uid"])
        if not podstate.started(pod) and not podstate.terminated(pod):
            if pod["metadata"].get("deletionTimestamp") and cancelled:
                return self._final(handle, [], updates, TaskState.CANCELLED, None, "cancelled")
            return self._not_started(handle, job, pod, updates)
        return self._started(handle, pod, updates, cancelled)

    def _started(self, handle: Handle, pod: dict[str, Any], updates: dict[str, Any], cancelled: bool) -> Status:
        state = handle.state
        name = pod["metadata"]["name"]
        cursor = logs.LogCursor.from_state(state)
        ended = podstate.terminated(pod)
        lines: list[str] = []
        key = (str(state["namespace"]), str(state["job_uid"]))
        read = key in self.reads
        if read:
            lines, after = self.reads[key] or ([], cursor)
            if after != cursor:
                updates.update(after.to_state())
            quiet = 0 if after != cursor else int(state.get("log_quiet") or 0) + 1
            updates.update(log_quiet=quiet, log_due=schedule.next_due(time.time(), quiet, self.running))
        # A pod that ended (or is being deleted) whose log is not read to its end yet stays running
        # until its read (a later poll when this one's cap was reached, or the server could not
        # answer): no line is lost.
        unread = not cursor.ended and (not read or self.reads[key] is None)
        deleted_outside = bool(pod["metadata"].get("deletionTimestamp")) and not cancelled
        if deleted_outside and not unread:
            self._stop(handle)
            return self._final(handle, lines, updates, TaskState.FAILED, None, f"the pod {name} was deleted outside offload while the task ran")
        if not ended or unread:
            return Status(TaskState.RUNNING, logs=lines, handle=handle.with_state(**updates) if updates else None)
        end = podstate.ending(pod, state.get("timeout"))
        if cancelled and end.state is not TaskState.SUCCEEDED:
            return self._final(handle, lines, updates, TaskState.CANCELLED, end.exit_code, "cancelled", end.started_at, end.finished_at)
        return self._final(handle, lines, updates, end.state, end.exit_code, end.error, end.started_at, end.finished_at)

    def _not_started(self, handle: Handle, job: dict[str, Any] | None, pod: dict[str, Any] | None, updates: dict[str, Any]) -> Status:
        state = handle.state
        failure = podstate.job_failure(job or {})
        if failure:
            return self._final(handle, [], updates, TaskState.FAILED, None, failure)
        lines = []
        reason = podstate.waiting_reason(pod) if pod is not None else None
        if reason and reason != state.get("waiting"):
            lines.append(f"offload: the pod waits to start: {reason}")
            updates["waiting"] = reason
        waited = time.time() - float(state.get("submitted_at") or time.time())
        hopeless = reason is not None and reason.split(":")[0] in podstate.HOPELESS
        limit = self.config.settings.pending_timeout
        if hopeless or waited > limit:
            self._stop(handle)
            why = f"the pod did not start within {limit:g} s (pending_timeout)" if not hopeless else "the pod cannot start"
            return self._final(handle, lines, updates, TaskState.FAILED, None, f"{why}: {reason or 'no pod was created'}")
        return Status(TaskState.PENDING, logs=lines, handle=handle.with_state(**updates) if updates else None)

    def _stop(self, handle: Handle) -> None:
        """Delete the Job of a task that failed while its pod waits or was replaced: nothing of it runs on."""
        delete_job(self.kube, str(handle.state["namespace"]), str(handle.state["job"]))

    def _final(
        self,
        handle: Handle,
        lines: list[str],
        updates: dict[str, Any],
        state: TaskState,
        code: int | None,
        error: str | None,
        started_at: float | None = None,
        finished_at: float | None = None,
    ) -> Status:
        final = {"state": state.value, "exit_code": code, "error": error, "started_at": started_at, "finished_at": finished_at or time.time()}
        return Status(state, exit_code=code, reason=error, logs=lines, handle=handle.with_state(**updates, final=final))


def poll(kube: Kube, config: KubernetesConfig, handles: Sequence[Handle], cancelled: set[str]) -> list[Status]:
    one = Poll(kube, config, cancelled)
    active = [h for h in handles if not h.state.get("final")]
    one.load(active)
    one.read_logs(active)
    return [one.status(h) for h in handles]
