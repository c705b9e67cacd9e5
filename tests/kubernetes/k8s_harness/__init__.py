"""Test harness of the Kubernetes backend: a real control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler v1.20.2 on 127.0.0.1; :mod:`k8s_harness.controlplane`)
and a FAKE KUBELET that plays the one node, ``fake-node`` (:mod:`k8s_harness.kubelet`).

The fake kubelet is a separate process. It registers the Node (InternalIP 127.0.0.1, 64 CPUs,
256Gi, 2000 pods) and keeps it Ready, watches the pods bound to it and runs their containers:
init containers one by one, then every container at once, with Kubernetes' ``command``/``args``
semantics, ``workingDir``, ``env`` (values with ``$(VAR)`` expansion, ``valueFrom``
``secretKeyRef``/``configMapKeyRef``/``fieldRef``), ``envFrom``, ``securityContext.runAsUser``
(docker) and volumes (``configMap`` with ``binaryData``/``items``/``defaultMode``, ``secret``,
``emptyDir``, ``hostPath``, ``persistentVolumeClaim`` -- a directory per claim under the
kubelet's workdir -- and ``downwardAPI``). It patches ``pods/status`` as the kubelet does
(Pending/ContainerCreating -> Running -> Succeeded/Failed, the Initialized, ContainersReady
and Ready conditions, container states with exit codes, reasons, times, ``restartCount``,
``containerID``), restarts containers under ``restartPolicy`` OnFailure/Always, enforces
``activeDeadlineSeconds`` (phase Failed, reason ``DeadlineExceeded``), finishes graceful
deletions (SIGTERM, the grace period, SIGKILL, then DELETE with grace 0 and the pod's uid as a
precondition) and serves logs at ``/containerLogs/...`` over HTTPS, which the apiserver proxies
``pods/log`` to (``follow``, ``timestamps``, ``sinceTime``, ``sinceSeconds``, ``tailLines``,
``limitBytes``, ``previous``; a log stays readable until the pod is deleted).

Runtimes: ``docker`` (default; host network; every image is played by the offline image
``offload-test-base:bookworm``; entrypoint none, default command ``/bin/sh``) and ``process``
(a plain process on the host, faster: ``command``+``args`` or ``args`` alone, no image defaults;
cwd a scratch directory unless ``workingDir``; environment PATH, HOME, HOSTNAME, the pod's
variables and ``FAKE_KUBELET_INSTANCE``; volumes are bind-mounted with ``unshare -m`` as root,
missing mount points being created on the host). Pod and host IP are always 127.0.0.1.
TEST-ONLY ``simulated`` (:mod:`k8s_harness.simulated`): no process, no image, the command
ignored; the container writes ``tick-<i> <time ns>`` every ``simulated-every`` seconds,
``simulated-lines`` lines, then exits 0: a thousand running, logging pods on two cores.

Pod annotations the fake kubelet obeys (all values strings):

``fake-kubelet.offload.test/runtime: process|docker|simulated``
    Which runtime runs this pod's containers (default: the kubelet's ``--runtime``).
``fake-kubelet.offload.test/simulated-lines: "<n>"``, ``.../simulated-every: "<seconds>"``
    The simulated runtime's line count (default 60) and interval (default 1).
``fake-kubelet.offload.test/oom-after: "<seconds>"``
    Kill each container that many seconds after it started: terminated, reason ``OOMKilled``,
    exit code 137 (then the restart policy applies).
``fake-kubelet.offload.test/evict-after: "<seconds>"``
    That many seconds after a container started, evict the pod: containers stopped (SIGTERM,
    2 s, SIGKILL), phase ``Failed``, reason ``Evicted``, message ``The node was low on
    resource: memory. Container main was using 1234567Ki, which exceeds its request of 0. ``.
``fake-kubelet.offload.test/log-delay: "<seconds>"``
    Each log line becomes readable through ``pods/log`` that many seconds after it was written
    (``follow`` still ends only after the last line was sent).

Image names: an image whose name starts with ``unpullable`` never starts: the container
waits with reason ``ErrImagePull`` (2 s), then ``ImagePullBackOff`` (3 s, doubling up to
20 s), alternating forever, as the kubelet does. Unschedulable pods need no knob: the real
scheduler leaves a pod whose ``nodeSelector`` matches no node Pending (PodScheduled False,
reason Unschedulable). A missing Secret/ConfigMap (or key) of an environment variable leaves
the container waiting with ``CreateContainerConfigError`` (message ``secret "x" not found``,
``couldn't find key K in Secret NS/NAME``), retried every 2 s; a missing one of a volume leaves
it ``ContainerCreating``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Exported lazily, so that ``python -m k8s_harness.kubelet`` does not import the module it runs.
_EXPORTS = {
    "ControlPlane": "controlplane", "MissingBinary": "controlplane", "SETUP_HINT": "controlplane",
    "FakeKubelet": "kubelet", "IMAGE": "kubelet", "NODE_NAME": "kubelet",
    "RUNTIME": "pods", "OOM_AFTER": "pods", "EVICT_AFTER": "pods", "LOG_DELAY": "pods",
    "SIMULATED_LINES": "simulated", "SIMULATED_EVERY": "simulated",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'k8s_harness' has no attribute {name!r}")
    return getattr(importlib.import_module(f"k8s_harness.{_EXPORTS[name]}"), name)
