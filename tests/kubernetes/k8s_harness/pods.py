"""One pod on the fake node, from binding to deletion, as the kubelet runs it.

The worker's thread supervises: it prepares the volumes (retrying), runs the init containers
one after the other and then every container at once (one thread each), enforces
``activeDeadlineSeconds`` and the fault annotations, and patches ``pods/status`` (a JSON merge
patch with the pod's uid, so a pod recreated under the same name is never touched) whenever
something changed. Terminating (a ``deletionTimestamp``): SIGTERM, the grace period, SIGKILL,
then ``DELETE`` with ``gracePeriodSeconds=0`` and a uid precondition, as the kubelet's status
manager does; without that last step the pod would stay Terminating forever.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from k8s_harness.logstore import ContainerLog, now_ns
from k8s_harness.podspec import ConfigError, Fetch, MountError, Volumes, container_spec
from k8s_harness.podstatus import TERMINAL, Container, phase, pod_status
from k8s_harness.rest import Rest
from k8s_harness.runtime import Handle, StartError

ANNOTATION = "fake-kubelet.offload.test"
RUNTIME = f"{ANNOTATION}/runtime"
OOM_AFTER = f"{ANNOTATION}/oom-after"
EVICT_AFTER = f"{ANNOTATION}/evict-after"
LOG_DELAY = f"{ANNOTATION}/log-delay"

ERR_IMAGE_PULL_SECONDS = 2.0
PULL_BACKOFF = (3.0, 20.0)
CRASH_BACKOFF = (1.0, 10.0)
RETRY_SECONDS = 2.0
EVICTION_MESSAGE = "The node was low on resource: memory. Container {name} was using 1234567Ki, which exceeds its request of 0. "
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"

log = logging.getLogger("fake-kubelet")


class Runtime(Protocol):
    name: str

    def start(self, spec: Any, log: ContainerLog) -> Handle: ...
    def cleanup(self) -> None: ...


@dataclass
class Node:
    """What every pod worker shares: the API, the runtimes, the directories."""

    rest: Rest
    fetch: Fetch
    runtimes: dict[str, Runtime]
    default_runtime: str
    pods_dir: Path
    claims_dir: Path


def _seconds(annotations: dict[str, str], key: str) -> float | None:
    try:
        return float(annotations[key]) if key in annotations else None
    except ValueError:
        return None


class PodWorker:
    def __init__(self, node: Node, pod: dict[str, Any]) -> None:
        self.node = node
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.annotations: dict[str, str] = meta.get("annotations") or {}
        spec = pod["spec"]
        self.init = [Container(c, True) for c in spec.get("initContainers") or []]
        self.main = [Container(c, False) for c in spec["containers"]]
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self._push_lock = threading.Lock()
        self.start_ns = now_ns()
        self.stopping: str | None = None  # why the containers are being stopped
        self.final: tuple[str, str] | None = None  # (reason, message) of a pod failed by the kubelet
        self.kill_deadline: float | None = None
        self.deleting = False  # the pod has a deletionTimestamp
        self.gone = False  # the pod no longer exists in the API
        self.done = False
        self.phase = "Pending"
        self._transitions: dict[str, tuple[str, str]] = {}
        self._pushed: dict[str, Any] | None = None
        self._dirty = True
        self.volumes = Volumes(pod, node.pods_dir / self.uid, node.claims_dir, node.fetch)
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.namespace}/{self.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def containers(self) -> list[Container]:
        return self.init + self.main

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers() if c.name == name), None)

    # -- events from the watch ------------------------------------------------------
    def update(self, pod: dict[str, Any]) -> None:
        with self.lock:
            self.pod = pod
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                grace = meta.get("deletionGracePeriodSeconds")
                grace = float(grace if grace is not None else 30)
                first = not self.deleting
                self.deleting = True
                if self.done:
                    threading.Thread(target=self._delete, daemon=True).start()
                elif first or self.kill_deadline is None or time.monotonic() + grace < self.kill_deadline:
                    self._stop("delete", grace)
            self.cond.notify_all()

    def vanished(self) -> None:
        """The pod was deleted outright: kill everything, forget its logs and volumes."""
        with self.lock:
            self.gone = True
            self.stopping = self.stopping or "vanished"
            for c in self.containers():
                if c.handle is not None:
                    c.handle.kill()
            self.cond.notify_all()
        threading.Thread(target=self._forget, daemon=True).start()

    def join(self, timeout: float) -> None:
        if self.thread.ident is not None:  # started (a pod deleted before it ran has no thread)
            self.thread.join(timeout)

    def _forget(self) -> None:
        self.join(120)
        for c in self.containers():
            for run in (c.log, c.previous_log):
                if run is not None:
                    run.close()
        self.volumes.remove()

    # -- stopping -------------------------------------------------------------------
    def _stop(self, reason: str, grace: float) -> None:
        """SIGTERM every running container now, SIGKILL what still runs after ``grace`` seconds."""
        with self.lock:
            deadline = time.monotonic() + max(0.0, grace)
            self.kill_deadline = min(self.kill_deadline or deadline, deadline)
            if self.stopping is not None:
                self.cond.notify_all()
                return
            self.stopping = reason
            for c in self.containers():
                if c.handle is not None:
                    c.handle.signal(signal.SIGTERM)
            self.cond.notify_all()
        threading.Thread(target=self._killer, daemon=True).start()

    def _killer(self) -> None:
        with self.lock:
            while any(c.handle is not None for c in self.containers()):
                assert self.kill_deadline is not None
                left = self.kill_deadline - time.monotonic()
                if left <= 0:
                    for c in self.containers():
                        if c.handle is not None:
                            c.handle.kill()
                    return
                self.cond.wait(min(left, 0.5))

    def _stopped(self) -> bool:
        """Whether the pod's containers are being stopped (another thread may decide it any time)."""
        return self.stopping is not None

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless the pod is being stopped."""
        deadline = time.monotonic() + seconds
        with self.lock:
            while self.stopping is None and (left := deadline - time.monotonic()) > 0:
                self.cond.wait(left)

    # -- running --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._supervise()
        except Exception:  # noqa: BLE001 - a test helper: say what went wrong, keep the node alive
            log.error("pod %s/%s: %s", self.namespace, self.name, traceback.format_exc())

    def _supervise(self) -> None:
        self.push()
        steps = threading.Thread(target=self._steps, name=f"steps-{self.name}", daemon=True)
        steps.start()
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        evict_after = _seconds(self.annotations, EVICT_AFTER)
        while steps.is_alive():
            steps.join(0.25)
            elapsed = (now_ns() - self.start_ns) / 1e9
            if deadline is not None and elapsed >= float(deadline) and self.stopping is None:
                self.final = ("DeadlineExceeded", DEADLINE_MESSAGE)
                self._stop("deadline", float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))
            if evict_after is not None and self.stopping is None and self._running_for() >= evict_after:
                running = next((c.name for c in self.main if c.running), self.main[0].name)
                self.final = ("Evicted", EVICTION_MESSAGE.format(name=running))
                self._stop("evict", 2.0)  # a hard eviction: the kubelet's minimum grace period
            if self._dirty:
                self.push()
        self._finish()

    def _running_for(self) -> float:
        started = [now_ns() - c.handle.started_ns for c in self.main if c.handle is not None]
        return max(started) / 1e9 if started else 0.0

    def _steps(self) -> None:
        while not self._stopped():
            try:
                self.volumes.prepare()
                break
            except (MountError, ApiException, OSError) as e:
                log.info("pod %s/%s: %s", self.namespace, self.name, e)
                self._sleep(RETRY_SECONDS)
        for c in self.init:
            if self._stopped():
                return
            self._run_container(c)
            if not c.succeeded:
                return
        threads = [threading.Thread(target=self._run_container, args=(c,), daemon=True) for c in self.main]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _set(self, c: Container, reason: str, message: str | None = None) -> None:
        with self.lock:
            c.waiting(reason, message)
        self.push()

    def _run_container(self, c: Container) -> None:
        image = c.spec.get("image", "")
        pull_backoff, crash_backoff = PULL_BACKOFF[0], CRASH_BACKOFF[0]
        while not self._stopped():
            if image.startswith("unpullable"):
                self._set(c, "ErrImagePull", f"rpc error: code = Unknown desc = Error response from daemon: pull access denied for {image.split(':')[0]}, "
                                             "repository does not exist or may require 'docker login': denied: requested access to the resource is denied")
                self._sleep(ERR_IMAGE_PULL_SECONDS)
                if self._stopped():
                    return
                self._set(c, "ImagePullBackOff", f'Back-off pulling image "{image}"')
                self._sleep(pull_backoff)
                pull_backoff = min(pull_backoff * 2, PULL_BACKOFF[1])
                continue
            try:
                spec = container_spec(self.pod, c.spec, c.restart_count, self.volumes, self.node.fetch)
            except ConfigError as e:
                self._set(c, "CreateContainerConfigError", str(e))
                self._sleep(RETRY_SECONDS)
                continue
            except ApiException as e:
                self._set(c, "CreateContainerConfigError", f"{e.status} {e.reason}")
                self._sleep(RETRY_SECONDS)
                continue
            name = self.annotations.get(RUNTIME, self.node.default_runtime)
            runtime = self.node.runtimes.get(name)
            if runtime is None:
                self._set(c, "CreateContainerError", f"the fake kubelet has no {name!r} runtime (it has {sorted(self.node.runtimes)})")
                self._sleep(RETRY_SECONDS)
                continue
            run_log = ContainerLog(_seconds(self.annotations, LOG_DELAY) or 0.0)
            handle: Handle | None = None
            try:
                handle = runtime.start(spec, run_log)
            except StartError as e:
                run_log.finish()
                with self.lock:
                    c.log = run_log
                    c.ended(e.exit_code, "ContainerCannotRun", now_ns(), now_ns(), str(e))
            except Exception as e:  # noqa: BLE001 - the runtime failed: retry, as the kubelet does
                self._set(c, "RunContainerError", str(e))
                self._sleep(RETRY_SECONDS)
                continue
            if handle is not None:
                with self.lock:
                    c.started(handle, run_log)
                    if self._stopped():
                        handle.kill()  # started while the pod was being stopped
            self.push()
            if handle is not None:
                self._watch(c, handle, run_log)
            if not self._restarts(c) or self._stopped():
                return
            with self.lock:
                c.restarting(f"back-off {crash_backoff:g}s restarting failed container={c.name} pod={self.name}_{self.namespace}({self.uid})")
            self.push()
            self._sleep(crash_backoff)
            crash_backoff = min(crash_backoff * 2, CRASH_BACKOFF[1])

    def _watch(self, c: Container, handle: Handle, run_log: ContainerLog) -> None:
        """Wait for a running container to end; the OOM knob kills it."""
        oom_after = _seconds(self.annotations, OOM_AFTER) if not c.init else None
        timer = None
        if oom_after is not None:
            def oom() -> None:
                with self.lock:
                    if c.handle is handle:
                        c.oom_requested = True
                        handle.kill()
            timer = threading.Timer(oom_after, oom)
            timer.daemon = True
            timer.start()
        code = handle.wait()
        if timer is not None:
            timer.cancel()
        run_log.finish()
        with self.lock:
            if c.oom_requested or handle.oom_killed:
                reason, code = "OOMKilled", 137
            else:
                reason = "Completed" if code == 0 else "Error"
            c.ended(code, reason, handle.started_ns, handle.finished_ns)
            c.oom_requested = False
            self.cond.notify_all()
        handle.remove()
        self.push()

    def _restarts(self, c: Container) -> bool:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        return (policy == "Always" and not c.init) or (policy in ("Always", "OnFailure") and not c.succeeded)

    # -- status ---------------------------------------------------------------------
    def _status(self) -> dict[str, Any]:
        if self.phase not in TERMINAL:
            self.phase = "Failed" if self.final else phase(self.pod["spec"], self.init, self.main)
        return pod_status(self.pod, self.phase, self.init, self.main, self._transitions, self.start_ns, self.final)

    def push(self) -> None:
        """Patch ``pods/status`` if it changed; a failure is retried by the supervisor."""
        with self._push_lock:
            with self.lock:
                if self.gone:
                    return
                status = self._status()
            if status == self._pushed:
                self._dirty = False
                return
            try:
                self.node.rest.merge_patch(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                                           {"metadata": {"uid": self.uid}, "status": status})
            except ApiException as e:
                self._dirty = e.status not in (404, 409, 422)
                if not self._dirty:
                    self.gone = True
                return
            except Exception:  # noqa: BLE001 - the apiserver is busy or restarting: retry later
                self._dirty = True
                return
            self._pushed, self._dirty = status, False

    def _finish(self) -> None:
        for _ in range(100):
            self.push()
            if not self._dirty or self.gone:
                break
            time.sleep(0.2)
        with self.lock:
            self.done = True
            deleting = self.deleting
        if deleting:
            self._delete()

    def _delete(self) -> None:
        """Finish a graceful deletion: every container is gone."""
        if self.gone:
            return
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        for _ in range(50):
            try:
                self.node.rest.delete(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}", body)
                return
            except ApiException as e:
                if e.status in (404, 409):
                    return
            except Exception:  # noqa: BLE001 - retried
                pass
            time.sleep(0.5)
