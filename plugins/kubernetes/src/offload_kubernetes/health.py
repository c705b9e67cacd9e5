"""``offload check kubernetes``: the server, the credentials, the namespace, the permissions
offload needs (asked with SelfSubjectAccessReview, so nothing is created to find out), a
server-side dry run of a Job, and the temporal storage; each said plainly."""

from __future__ import annotations

from typing import Any

from offload import Health, Storage
from offload_kubernetes.client import Kube, KubeError
from offload_kubernetes.config import KubernetesConfig

#: (verb, group, resource, subresource) offload uses in the task's namespace.
NEEDED = (
    ("create", "batch", "jobs", ""),
    ("list", "batch", "jobs", ""),
    ("delete", "batch", "jobs", ""),
    ("list", "", "pods", ""),
    ("get", "", "pods", "log"),
    ("delete", "", "pods", ""),
    ("create", "", "configmaps", ""),
)

PROBE_JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"generateName": "offload-check-", "labels": {"app.kubernetes.io/managed-by": "offload"}},
    "spec": {
        "backoffLimit": 0,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "task", "image": "offload-check", "command": ["true"]}]}},
    },
}


def _allowed(kube: Kube, namespace: str, verb: str, group: str, resource: str, sub: str) -> bool:
    attrs = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
    if sub:
        attrs["subresource"] = sub
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": attrs}}
    answer = kube.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review)
    return bool((answer or {}).get("status", {}).get("allowed"))


def check(kube: Kube, config: KubernetesConfig, storage: Storage | None) -> Health:
    if not config.configured:
        return Health(False, "kubernetes: not configured (no command_executor.kubernetes section with name)")
    details: list[str] = []
    try:
        version = kube.request("GET", "/version")
    except KubeError as e:
        if e.status == 401:
            return Health(False, f"kubernetes: the API server at {kube.where} rejected the credentials (401)")
        return Health(False, f"kubernetes: {e}".replace("kubernetes: kubernetes: ", "kubernetes: "))
    namespace = kube.namespace
    details.append(f"server {kube.where}: Kubernetes {version.get('gitVersion', '?')}")
    details.append(f"namespace: {namespace}")
    try:
        denied = [f"{v} {r}{'/' + s if s else ''}" for v, g, r, s in NEEDED if not _allowed(kube, namespace, v, g, r, s)]
    except KubeError as e:
        if e.status == 401:
            return Health(False, f"kubernetes: the API server at {kube.where} rejected the credentials (401)", tuple(details))
        return Health(False, f"kubernetes: cannot ask what offload may do: {e}", tuple(details))
    if denied:
        return Health(False, f"kubernetes: not allowed in namespace {namespace}: {', '.join(denied)}", tuple(details))
    details.append("allowed: create, list and delete Jobs; list pods and read their logs; create ConfigMaps")
    try:
        kube.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", query={"dryRun": "All"}, body=PROBE_JOB)
    except KubeError as e:
        return Health(False, f"kubernetes: the server refuses a Job in namespace {namespace} (dry run): {e}", tuple(details))
    details.append("a Job passes the server's dry run (admission, quotas)")
    if storage is not None:
        found = storage.check()
        details.extend(found.details)
        if not found.ok:
            return Health(False, f"kubernetes: config_storage: {found.summary}", tuple(details))
        where = f"storage {storage.uri('')}"
    else:
        where = "no storage: projects up to 700 KiB travel in a ConfigMap"
    return Health(True, f"kubernetes: ready (namespace {namespace}, {where})", tuple(details))
