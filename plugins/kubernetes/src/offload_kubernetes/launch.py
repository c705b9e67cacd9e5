"""Submitting a task: ship the project, create the Job, and find a Job created before.

The project travels through ``config_storage.in`` (a presigned GET; the io directory
returns through a presigned PUT to ``config_storage.out``), or, without a storage, in a
ConfigMap owned by the Job (the io directory then returns in the log, after the
command's output). The environment travels in the archive, never in the Job's spec.

The handle's state holds no URL (they grant access to the bucket) and no secret: the
namespace, the Job's name and uid, the storage keys, the end-of-log marker and the log
cursor.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from offload import BackendError, Handle, Storage, StorageError, TaskRequest, remote
from offload_kubernetes import jobspec
from offload_kubernetes.client import Kube, KubeError
from offload_kubernetes.config import CONFIGMAP_LIMIT, KubernetesConfig
from offload_kubernetes.taskconfig import KubernetesTaskSettings

BATCH = "/apis/batch/v1/namespaces/{ns}/jobs"
CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
PVCS = "/api/v1/namespaces/{ns}/persistentvolumeclaims"
PVS = "/api/v1/persistentvolumes"


def initial_state(kube: Kube, request: TaskRequest, name: str, digest: str) -> dict[str, Any]:
    base = f"{jobspec.project_tag(request.project_dir)}/{name}/"
    return {
        "namespace": kube.namespace,
        "job": name,
        "job_uid": None,
        "submission": digest[:40],
        "project": jobspec.project_tag(request.project_dir),
        "marker": f"offload-end-of-log {digest[:20]}",
        "input_key": base + "project.tar.gz",
        "output_key": base + "io.tar.gz",
        "storage": False,
        "submitted_at": time.time(),
        "timeout": request.timeout,
    }


def _ensure(kube: Kube, path: str, manifest: dict[str, Any]) -> None:
    """Create ``manifest`` unless an object of that name exists (Digdag's PersistentVolume(Claim))."""
    try:
        kube.request("POST", path, body=manifest)
    except KubeError as e:
        if e.status != 409:
            raise


def _script(config: KubernetesConfig, request: TaskRequest, state: dict[str, Any], get_url: str | None, put_url: str | None) -> str:
    body = remote.task_body(request.argv, request.workdir, request.io_dir, put_url, state["marker"], config.settings.inline_output_limit)
    if get_url is not None:
        return remote.loader(get_url, body)
    return remote.loader(None, body, archive_path=f"{jobspec.INPUT_DIR}/{jobspec.INPUT_FILE}")


def _too_big(size: int) -> BackendError:
    return BackendError(
        f"kubernetes: the project archive is {size // 1024} KiB, more than the {CONFIGMAP_LIMIT // 1024} KiB a ConfigMap can carry: "
        "configure a temporal storage (command_executor.kubernetes.config_storage.in.type: s3 or gcs, with .in.s3.bucket, "
        "and the same under config_storage.out), or make the project smaller"
    )


def submit(
    kube: Kube,
    storages: tuple[Storage, Storage] | None,
    config: KubernetesConfig,
    settings: KubernetesTaskSettings,
    request: TaskRequest,
) -> Handle:
    digest = jobspec.submission(request)
    name = jobspec.job_name(request, digest)
    state = initial_state(kube, request, name, digest)
    ns = state["namespace"]
    try:
        env = remote.env_script(request.env)
    except ValueError as e:
        raise BackendError(f"kubernetes: {e}") from None
    path = remote.build_archive(request.project_dir, request.io_dir, {"env.sh": env})
    try:
        configmap = None
        if storages is not None:
            storage_in, storage_out = storages
            wait = (request.timeout or 0) + config.settings.pending_timeout
            try:
                storage_in.put_file(state["input_key"], path)
                get_url = storage_in.presign_get(state["input_key"], storage_in.url_lifetime(wait))
                put_url = storage_out.presign_put(state["output_key"], storage_out.url_lifetime(wait))
            except StorageError as e:
                raise BackendError(f"kubernetes: cannot ship the project through the temporal storage: {e}") from None
            state["storage"] = True
            script = _script(config, request, state, get_url, put_url)
        else:
            size = os.path.getsize(path)
            if size > CONFIGMAP_LIMIT:
                raise _too_big(size)
            with open(path, "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
            configmap = jobspec.configmap(name, jobspec.labels(config, settings, request, digest), data)
            script = _script(config, request, state, None, None)
    finally:
        os.unlink(path)
    section = settings.section
    if section.PersistentVolume is not None:
        _ensure(kube, PVS, dict(section.PersistentVolume))
    if section.PersistentVolumeClaim is not None:
        _ensure(kube, PVCS.format(ns=ns), dict(section.PersistentVolumeClaim))
    if configmap is not None:
        _ensure(kube, CONFIGMAPS.format(ns=ns), configmap)  # one left by an interrupted submission holds the same project
    manifest = jobspec.job(config, settings, request, name, digest, script, name if configmap is not None else None)
    try:
        created = kube.request("POST", BATCH.format(ns=ns), body=manifest)
    except KubeError as e:
        if e.status != 409:
            raise BackendError(f"kubernetes: cannot create Job {name} in namespace {ns}: {e}") from None
        created = _existing(kube, ns, name, state["submission"])
    state["job_uid"] = created["metadata"]["uid"]
    if configmap is not None:
        _own(kube, ns, name, created)
    return Handle("kubernetes", request.task_id, request.io_path, state)


def _existing(kube: Kube, ns: str, name: str, submission: str) -> dict[str, Any]:
    """The Job a create answered 409 for: this submission's (adopted), or someone else's (an error)."""
    found: dict[str, Any] = kube.request("GET", f"{BATCH.format(ns=ns)}/{name}")
    if (found.get("metadata", {}).get("labels") or {}).get(jobspec.SUBMISSION_LABEL) != submission:
        raise BackendError(f"kubernetes: a Job named {name} exists in namespace {ns} and was not created by offload for this task")
    return found


def _own(kube: Kube, ns: str, name: str, job: dict[str, Any]) -> None:
    """Make the Job own its ConfigMap, so deleting the Job (or its TTL) deletes the ConfigMap."""
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"]}
    patch = {"metadata": {"ownerReferences": [owner]}}
    try:
        kube.request("PATCH", f"{CONFIGMAPS.format(ns=ns)}/{name}", body=patch, content_type="application/merge-patch+json")
    except KubeError:
        pass  # offload gc removes a ConfigMap whose Job is gone


def adopt(kube: Kube, request: TaskRequest) -> Handle | None:
    """The Job an interrupted submission created for ``request``, found by its deterministic name."""
    digest = jobspec.submission(request)
    name = jobspec.job_name(request, digest)
    state = initial_state(kube, request, name, digest)
    try:
        found = _existing(kube, state["namespace"], name, state["submission"])
    except KubeError as e:
        if e.status == 404:
            return None
        raise
    state["job_uid"] = found["metadata"]["uid"]
    volumes = found.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []
    state["storage"] = not any(v.get("name") == jobspec.INPUT_VOLUME for v in volumes)
    created = found.get("metadata", {}).get("creationTimestamp")
    if created:
        state["submitted_at"] = _epoch(created)
    if not state["storage"]:
        _own(kube, state["namespace"], name, found)
    return Handle("kubernetes", request.task_id, request.io_path, state)


def _epoch(stamp: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
