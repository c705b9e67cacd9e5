"""A pod's status as the kubelet computes it from its containers' states: the phase
(Pending, Running, Succeeded, Failed; terminal phases never change), the conditions
Initialized, ContainersReady and Ready, and one ``containerStatuses`` entry per container.
"""

from __future__ import annotations

from typing import Any

from k8s_harness.logstore import ContainerLog, rfc3339
from k8s_harness.runtime import Handle

TERMINAL = ("Succeeded", "Failed")
MANAGED_CONDITIONS = ("Initialized", "ContainersReady", "Ready")


class Container:
    """One container of a pod: its spec, its current and last state, its runs' logs."""

    def __init__(self, spec: dict[str, Any], init: bool) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.container_id = ""
        self.image_id = ""
        self.handle: Handle | None = None
        self.log: ContainerLog | None = None
        self.previous_log: ContainerLog | None = None
        self.oom_requested = False

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")

    @property
    def succeeded(self) -> bool:
        return self.terminated is not None and self.terminated.get("exitCode") == 0

    def waiting(self, reason: str, message: str | None = None) -> None:
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    def started(self, handle: Handle, log: ContainerLog) -> None:
        self.handle, self.log = handle, log
        self.container_id, self.image_id = handle.container_id, handle.image_id
        self.state = {"running": {"startedAt": rfc3339(handle.started_ns)}}

    def ended(self, exit_code: int, reason: str, started_ns: int, finished_ns: int, message: str | None = None) -> None:
        self.handle = None
        terminated: dict[str, Any] = {"exitCode": exit_code, "reason": reason, "startedAt": rfc3339(started_ns), "finishedAt": rfc3339(finished_ns)}
        if message:
            terminated["message"] = message
        if self.container_id:
            terminated["containerID"] = self.container_id
        self.state = {"terminated": terminated}

    def restarting(self, message: str) -> None:
        self.last_state = self.state
        self.previous_log, self.log = self.log, None
        self.restart_count += 1
        self.container_id = ""
        self.waiting("CrashLoopBackOff", message)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name, "state": self.state, "lastState": self.last_state, "ready": self.running,
            "restartCount": self.restart_count, "image": self.spec.get("image", ""), "imageID": self.image_id,
            "started": self.running,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def phase(spec: dict[str, Any], init: list[Container], main: list[Container]) -> str:
    """The kubelet's ``getPhase``: what the containers' states make of the pod."""
    policy = spec.get("restartPolicy", "Always")
    for c in init:
        if c.terminated is not None and not c.succeeded and policy == "Never":
            return "Failed"
    if any(not c.succeeded for c in init):
        return "Pending"
    running = sum(1 for c in main if c.running)
    stopped = sum(1 for c in main if c.terminated is not None or ("waiting" in c.state and c.last_state.get("terminated")))
    waiting = len(main) - running - stopped
    succeeded = sum(1 for c in main if c.succeeded)
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if policy == "Always":
        return "Running"
    if policy == "OnFailure":
        return "Succeeded" if stopped == succeeded else "Running"
    return "Succeeded" if stopped == succeeded else "Failed"


def conditions(current_phase: str, init: list[Container], main: list[Container]) -> dict[str, tuple[str, str | None, str | None]]:
    """type -> (status, reason, message) of the conditions the kubelet owns."""
    result: dict[str, tuple[str, str | None, str | None]] = {}
    completed = current_phase == "Succeeded"
    pending_init = [c.name for c in init if not c.succeeded]
    if completed:
        result["Initialized"] = ("True", "PodCompleted", None)
    elif pending_init:
        result["Initialized"] = ("False", "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(pending_init)}]")
    else:
        result["Initialized"] = ("True", None, None)
    unready = [c.name for c in main if not c.running]
    if completed:
        ready: tuple[str, str | None, str | None] = ("False", "PodCompleted", None)
    elif unready:
        ready = ("False", "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = ("True", None, None)
    result["ContainersReady"] = ready
    result["Ready"] = ready
    return result


def pod_status(pod: dict[str, Any], current_phase: str, init: list[Container], main: list[Container],
               transitions: dict[str, tuple[str, str]], start_ns: int, final: tuple[str, str] | None) -> dict[str, Any]:
    """The ``status`` the kubelet writes; ``transitions`` (type -> (status, time)) keeps the conditions' transition times."""
    now = rfc3339()
    kept = [cond for cond in (pod.get("status") or {}).get("conditions") or [] if cond.get("type") not in MANAGED_CONDITIONS]
    mine = []
    for kind, (value, reason, message) in conditions(current_phase, init, main).items():
        if transitions.get(kind, ("", ""))[0] != value:
            transitions[kind] = (value, now)
        cond: dict[str, Any] = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": transitions[kind][1]}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        mine.append(cond)
    status: dict[str, Any] = {
        "phase": current_phase, "conditions": mine + kept, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}], "startTime": rfc3339(start_ns),
        "containerStatuses": [c.status() for c in main],
    }
    if init:
        status["initContainerStatuses"] = [c.status() for c in init]
    if final:
        status["reason"], status["message"] = final
    return status
