"""``offload gc``: this project's Jobs and ConfigMaps that no journal tracks.

A Job offload collected is deleted then; what is left is from a driver that died for
good, or a journal that was removed. A Job still running is left alone unless it is
older than ``min_age`` seconds (it may belong to a submission whose handle is not
journaled yet); a ConfigMap whose Job is gone is removed (its owner would have taken it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from offload import Handle
from offload_kubernetes.client import Kube

MIN_AGE = 3600.0


def _age(obj: dict[str, Any], now: float) -> float:
    from offload_kubernetes import logs

    stamp = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
    return now - logs.parse_time_ns(stamp) / 1e9 if stamp else 0.0


def _finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


def collect_garbage(kube: Kube, tracked: Sequence[Handle], dry_run: bool, project_dir: str | None, min_age: float, now: float) -> list[str]:
    from offload_kubernetes import jobspec
    from offload_kubernetes.tracking import delete_job, list_objects

    project = jobspec.project_tag(os.path.abspath(project_dir or os.getcwd()))
    namespace = kube.namespace
    keep = {str(h.state.get("job")) for h in tracked if h.backend == "kubernetes" and h.state.get("namespace") == namespace}
    done: list[str] = []
    jobs = list_objects(kube, f"/apis/batch/v1/namespaces/{namespace}/jobs", project)
    names = {j["metadata"]["name"] for j in jobs}
    for job in jobs:
        name = job["metadata"]["name"]
        if name in keep or job["metadata"].get("deletionTimestamp"):
            continue
        if not _finished(job) and _age(job, now) < min_age:
            continue
        done.append(f"{'would delete' if dry_run else 'deleted'} Job {namespace}/{name}")
        if not dry_run:
            delete_job(kube, namespace, name)
    for cm in list_objects(kube, f"/api/v1/namespaces/{namespace}/configmaps", project):
        name = cm["metadata"]["name"]
        if name in names or name in keep or _age(cm, now) < min_age:
            continue
        done.append(f"{'would delete' if dry_run else 'deleted'} ConfigMap {namespace}/{name}")
        if not dry_run:
            kube.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    return done
