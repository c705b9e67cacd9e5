"""The Node object of the fake kubelet, kept Ready: its status (conditions with heartbeat
times, capacity, the log port in ``daemonEndpoints``) is patched and its Lease in
``kube-node-lease`` renewed every ``HEARTBEAT`` seconds, so the node-lifecycle controller
never taints it (its grace period is 40 s).
"""

from __future__ import annotations

import datetime
import logging
import platform
import threading
from typing import Any

from kubernetes.client.exceptions import ApiException

from k8s_harness.logstore import rfc3339
from k8s_harness.rest import Rest

HEARTBEAT = 10.0
RESOURCES = {"cpu": "64", "memory": "256Gi", "pods": "2000", "ephemeral-storage": "1Ti"}

log = logging.getLogger("fake-kubelet")


def _micro_time() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeKeeper:
    """Registers node ``name`` and keeps it Ready until :meth:`stop`."""

    def __init__(self, rest: Rest, name: str, port: int, runtime: str) -> None:
        self.rest, self.name, self.port, self.runtime = rest, name, port, runtime
        self.uid = ""
        self._since = rfc3339()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-heartbeat", daemon=True)

    def register(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        }
        try:
            node = self.rest.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": labels}})
        except ApiException as e:
            if e.status != 409:
                raise
            node = self.rest.merge_patch(f"/api/v1/nodes/{self.name}", {"metadata": {"labels": labels}, "spec": {"unschedulable": False}})
        self.uid = node["metadata"]["uid"]
        self.heartbeat()
        self._thread.start()

    def _status(self) -> dict[str, Any]:
        now = rfc3339()
        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
            return {"type": kind, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": self._since}
        return {
            "capacity": RESOURCES, "allocatable": RESOURCES,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": "fake", "systemUUID": "fake", "bootID": "fake", "kernelVersion": platform.release(),
                "osImage": "fake kubelet (offload tests)", "containerRuntimeVersion": f"{self.runtime}://fake",
                "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux", "architecture": "amd64",
            },
        }

    def heartbeat(self) -> None:
        self.rest.merge_patch(f"/api/v1/nodes/{self.name}/status", {"status": self._status()})
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        try:
            self.rest.merge_patch(path, {"spec": {"holderIdentity": self.name, "renewTime": _micro_time()}})
        except ApiException as e:
            if e.status != 404:
                raise
            self.rest.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": "kube-node-lease",
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}]},
                "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": _micro_time()},
            })

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                self.heartbeat()
            except Exception as e:  # noqa: BLE001 - the next heartbeat tries again
                log.warning("node heartbeat failed: %s", e)

    def stop(self) -> None:
        self._stop.set()
