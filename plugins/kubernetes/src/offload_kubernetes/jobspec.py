"""The Job (batch/v1) and ConfigMap of one task, as plain manifests.

Names and labels come from the submission's identity, so a driver that restarts derives
the same Job name, and creating it again answers 409 instead of running the task twice.
Label values must be at most 63 characters of ``[A-Za-z0-9._-]``: the task and run ids
are put there made safe, and in annotations as they are.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from offload import TaskRequest
from offload.remote.identity import project_digest, submission_digest
from offload_kubernetes.config import KubernetesConfig
from offload_kubernetes.taskconfig import KubernetesTaskSettings

KIND = "offload-kubernetes"
CONTAINER = "task"
INPUT_VOLUME = "offload-project"
INPUT_DIR = "/offload-project"
INPUT_FILE = "project.tgz"

MANAGED_BY = "app.kubernetes.io/managed-by"
PROJECT_LABEL = "offload.project"
SUBMISSION_LABEL = "offload.submission"
RUN_LABEL = "offload.run-id"
TASK_LABEL = "offload.task-id"
TASK_NAME_ANNOTATION = "offload.task-name"


def label_value(text: str) -> str:
    """``text`` as a label value: the same when it is one, else made safe and told apart by a digest."""
    if len(text) <= 63 and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", text):
        return text
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:50].strip("_.-")
    return f"{safe}-{hashlib.sha256(text.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}".lstrip("-")


def submission(request: TaskRequest) -> str:
    return submission_digest(KIND, request.project_dir, request.task_id)


def project_tag(project_dir: str) -> str:
    return project_digest(KIND, project_dir)


def job_name(request: TaskRequest, digest: str) -> str:
    """``offload-<task name>-<digest>``: a DNS label (the Job's pods get 6 more characters)."""
    name = str(request.labels.get("offload.task-name") or request.task_id)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30].strip("-")
    return f"offload-{slug + '-' if slug else ''}{digest[:16]}"


def labels(config: KubernetesConfig, settings: KubernetesTaskSettings, request: TaskRequest, digest: str) -> dict[str, str]:
    out = {**config.settings.labels, **settings.section.labels}
    out.update(
        {
            MANAGED_BY: "offload",
            PROJECT_LABEL: project_tag(request.project_dir),
            SUBMISSION_LABEL: digest[:40],
            TASK_LABEL: label_value(request.task_id),
        }
    )
    run = request.labels.get(RUN_LABEL)
    if run:
        out[RUN_LABEL] = label_value(str(run))
    return out


def annotations_of(config: KubernetesConfig, settings: KubernetesTaskSettings, request: TaskRequest) -> dict[str, str]:
    out = {**config.settings.annotations, **settings.section.annotations, TASK_LABEL: request.task_id}
    for key in (RUN_LABEL, TASK_NAME_ANNOTATION):
        if request.labels.get(key):
            out[key] = str(request.labels[key])
    return out


def resources(settings: KubernetesTaskSettings, request: TaskRequest) -> dict[str, Any]:
    """Requests and limits: the task's resources, then ``kubernetes.resources``, then Digdag's ``Pod.resources``."""
    same: dict[str, str] = {}
    res = request.resources
    if res.cpu is not None:
        same["cpu"] = f"{int(res.cpu * 1000)}m"
    if res.memory is not None:
        same["memory"] = f"{res.memory}Mi"
    if res.gpu:
        same["nvidia.com/gpu"] = str(res.gpu)
    short = settings.section.resources
    if short is not None:
        for key, name in (("cpu", "cpu"), ("memory", "memory"), ("gpu", "nvidia.com/gpu")):
            if getattr(short, key) is not None:
                same[name] = str(getattr(short, key))
    out: dict[str, Any] = {"requests": dict(same), "limits": dict(same)} if same else {}
    for part, values in (settings.section.Pod.get("resources") or {}).items():
        out.setdefault(part, {}).update({k: str(v) for k, v in (values or {}).items()})
    return out


def merge(under: Any, over: Any) -> Any:
    """``over`` merged onto ``under``: mappings key by key, lists of named items by name, else ``over``."""
    if isinstance(under, Mapping) and isinstance(over, Mapping):
        out = dict(under)
        for key, value in over.items():
            out[key] = merge(under[key], value) if key in under else copy.deepcopy(value)
        return out
    if isinstance(under, list) and isinstance(over, list):
        if all(isinstance(i, Mapping) and "name" in i for i in [*under, *over]):
            merged = {i["name"]: i for i in under}
            for item in over:
                merged[item["name"]] = merge(merged[item["name"]], item) if item["name"] in merged else item
            return list(merged.values())
        return [*under, *over]
    return copy.deepcopy(over)


def pod_template(settings: KubernetesTaskSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user's ``pod_template`` as (metadata, spec); a bare pod spec is taken as the spec.

    Its first container (or the one named ``task``) is the one offload's is merged onto."""
    template = copy.deepcopy(settings.section.pod_template or {})
    if "spec" in template or "metadata" in template:
        metadata, spec = dict(template.get("metadata") or {}), dict(template.get("spec") or {})
    else:
        metadata, spec = {}, template
    containers = list(spec.get("containers") or [])
    if containers and not any(c.get("name") == CONTAINER for c in containers):
        containers[0] = {**containers[0], "name": CONTAINER}
    if containers:
        spec["containers"] = containers
    return metadata, spec


def job(
    config: KubernetesConfig,
    settings: KubernetesTaskSettings,
    request: TaskRequest,
    name: str,
    digest: str,
    script: str,
    configmap: str | None,
) -> dict[str, Any]:
    """The Job of ``request``: its container runs ``script`` (``/bin/sh -c``)."""
    section = settings.section
    meta_labels = labels(config, settings, request, digest)
    meta_annotations = annotations_of(config, settings, request)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "command": ["/bin/sh", "-c", script],
        "env": [{"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for var, secret, key in settings.secret_env],
        "volumeMounts": list(section.Pod.get("volumeMounts") or []),
    }
    if config.settings.image_pull_policy:
        container["imagePullPolicy"] = config.settings.image_pull_policy
    limits = resources(settings, request)
    if limits:
        container["resources"] = limits
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], "volumes": list(section.Pod.get("volumes") or [])}
    if configmap is not None:
        container["volumeMounts"].append({"name": INPUT_VOLUME, "mountPath": INPUT_DIR, "readOnly": True})
        spec["volumes"].append({"name": INPUT_VOLUME, "configMap": {"name": configmap, "defaultMode": 0o444}})
    for key in ("affinity", "tolerations"):
        if key in section.Pod:
            spec[key] = copy.deepcopy(section.Pod[key])
    if section.node_selector:
        spec["nodeSelector"] = dict(section.node_selector)
    if section.service_account_name:
        spec["serviceAccountName"] = section.service_account_name
    if section.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in section.image_pull_secrets]
    if request.timeout:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(request.timeout))
    extra_meta, extra_spec = pod_template(settings)
    pod_meta = merge(extra_meta, {"labels": meta_labels, "annotations": meta_annotations})
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {"metadata": pod_meta, "spec": merge(extra_spec, spec)},
    }
    if config.settings.default_pod_ttl:
        job_spec["ttlSecondsAfterFinished"] = config.settings.default_pod_ttl
    if request.timeout:
        # A backstop: the pod's own deadline fails the task and keeps its log; this one
        # ends a Job whose pod never started, as pending_timeout does while a driver polls.
        job_spec["activeDeadlineSeconds"] = math.ceil(request.timeout + config.settings.pending_timeout + 60)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": meta_labels, "annotations": meta_annotations},
        "spec": job_spec,
    }


def configmap(name: str, job_labels: Mapping[str, str], archive_b64: str) -> dict[str, Any]:
    """The ConfigMap that carries the project archive when there is no storage."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": dict(job_labels)},
        "binaryData": {INPUT_FILE: archive_b64},
    }
