"""A task's settings for Kubernetes: its ``kubernetes:`` section and ``docker.image``.

::

    _export:
      docker:
        image: python:3.12
      kubernetes:
        Pod:                                # Digdag's keys, as Kubernetes spells them
          resources: {requests: {cpu: "1"}, limits: {memory: 1Gi}}
          volumes: [...]
          volumeMounts: [...]
          affinity: {...}
          tolerations: [...]
        PersistentVolume: {...}             # created when missing (Digdag's)
        PersistentVolumeClaim: {...}
        resources: {cpu: 2, memory: 4Gi, gpu: 1}   # requests and limits at once
        node_selector: {pool: batch}
        service_account_name: runner
        image_pull_secrets: [registry-key]
        labels: {team: data}
        annotations: {owner: me}
        env_from_secrets: {DB_PASSWORD: db/password}   # a Secret's key, by reference
        pod_template: {spec: {priorityClassName: low}} # merged under offload's spec

Only ``image`` is read of the docker section (as Digdag reads it); ``docker.build``
needs the docker backend. What can be checked before a submission is checked here,
with the key path: the API server checks the rest (``offload check kubernetes`` runs
a server-side dry run of a Job built from a task's settings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from offload import Problem, structure_strict
from offload_kubernetes.config import KubernetesConfig

POD_KEYS = ("resources", "volumes", "volumeMounts", "affinity", "tolerations")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei|e[0-9]+)?$")


@attrs.frozen
class ShortResources:
    """``kubernetes.resources``: the same value as request and limit (``gpu`` is ``nvidia.com/gpu``)."""

    cpu: Any = None  # a quantity: 2, 0.5, "500m"
    memory: Any = None  # a quantity: "512Mi", "4Gi"
    gpu: int | None = None


@attrs.frozen
class KubernetesSection:
    """The ``kubernetes:`` keys of a task, as written."""

    Pod: dict[str, Any] = attrs.field(factory=dict)
    PersistentVolume: dict[str, Any] | None = None
    PersistentVolumeClaim: dict[str, Any] | None = None
    resources: ShortResources | None = None
    node_selector: dict[str, str] = attrs.field(factory=dict)
    service_account_name: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    labels: dict[str, str] = attrs.field(factory=dict)
    annotations: dict[str, str] = attrs.field(factory=dict)
    env_from_secrets: dict[str, Any] = attrs.field(factory=dict)
    pod_template: dict[str, Any] | None = None


@attrs.frozen
class KubernetesTaskSettings:
    """What a Job needs of a task besides its request."""

    image: str
    section: KubernetesSection = attrs.field(factory=KubernetesSection)
    #: ``env_from_secrets`` as (variable, secret, key), checked.
    secret_env: tuple[tuple[str, str, str], ...] = ()


def _check_quantity(value: Any, where: str, problems: list[Problem]) -> None:
    if value is not None and not _QUANTITY.match(str(value)):
        problems.append(Problem(where, f"is not a Kubernetes quantity (like 500m, 2, 1.5, 512Mi, 4Gi), got {value!r}", fatal=True))


def _check_pod(pod: Mapping[str, Any], where: str, problems: list[Problem]) -> None:
    for key in sorted(set(pod) - set(POD_KEYS)):
        problems.append(Problem(f"{where}.Pod.{key}", f"unknown key (known keys: {', '.join(POD_KEYS)}; others go in pod_template)", fatal=True))
    for key, kind in (("volumes", list), ("volumeMounts", list), ("tolerations", list), ("affinity", Mapping), ("resources", Mapping)):
        if key in pod and not isinstance(pod[key], kind):
            problems.append(Problem(f"{where}.Pod.{key}", f"must be a {'list' if kind is list else 'mapping'}", fatal=True))
    resources = pod.get("resources")
    if isinstance(resources, Mapping):
        for part in sorted(set(resources) - {"requests", "limits"}):
            problems.append(Problem(f"{where}.Pod.resources.{part}", "unknown key (known keys: requests, limits)", fatal=True))
        for part in ("requests", "limits"):
            values = resources.get(part) or {}
            if not isinstance(values, Mapping):
                problems.append(Problem(f"{where}.Pod.resources.{part}", "must be a mapping of resource to quantity", fatal=True))
                continue
            for name, value in values.items():
                _check_quantity(value, f"{where}.Pod.resources.{part}.{name}", problems)
    names = {v.get("name") for v in pod.get("volumes") or [] if isinstance(v, Mapping)}
    for i, mount in enumerate(pod.get("volumeMounts") or []):
        if not isinstance(mount, Mapping) or not mount.get("name") or not mount.get("mountPath"):
            problems.append(Problem(f"{where}.Pod.volumeMounts[{i}]", "must be a mapping with name and mountPath", fatal=True))
        elif mount["name"] not in names:
            problems.append(Problem(f"{where}.Pod.volumeMounts[{i}].name", f"names no volume of Pod.volumes: {mount['name']!r}", fatal=True))


def _secret_env(section: KubernetesSection, where: str, problems: list[Problem]) -> tuple[tuple[str, str, str], ...]:
    """``{VAR: "secret/key"}`` or ``{VAR: {secret: s, key: k}}`` as checked triples."""
    out = []
    for var, ref in section.env_from_secrets.items():
        at = f"{where}.env_from_secrets.{var}"
        if not _ENV_NAME.match(str(var)):
            problems.append(Problem(at, "is not a valid environment variable name", fatal=True))
            continue
        if isinstance(ref, str) and ref.count("/") == 1:
            secret, key = ref.split("/")
        elif isinstance(ref, Mapping) and set(ref) == {"secret", "key"}:
            secret, key = str(ref["secret"]), str(ref["key"])
        else:
            problems.append(Problem(at, "must be SECRET/KEY or {secret: SECRET, key: KEY}", fatal=True))
            continue
        if not _DNS_NAME.match(secret) or not key:
            problems.append(Problem(at, f"names no valid Secret and key: {secret!r}/{key!r}", fatal=True))
            continue
        out.append((str(var), secret, key))
    return tuple(out)


def _check_object(value: Mapping[str, Any] | None, kind: str, where: str, problems: list[Problem]) -> None:
    if value is None:
        return
    name = (value.get("metadata") or {}).get("name") if isinstance(value.get("metadata"), Mapping) else None
    if not name or not isinstance(value.get("spec"), Mapping):
        problems.append(Problem(f"{where}.{kind}", f"must be a {kind} with metadata.name and spec", fatal=True))


def parse(config: KubernetesConfig, sections: Mapping[str, Any], where: str) -> tuple[KubernetesTaskSettings | None, list[Problem]]:
    """The task's settings, or the problems that keep Kubernetes from running it.

    Fatal problems are a wrong ``kubernetes:`` section; the others mean "not configured
    for this task" (Kubernetes not configured, no image, an image to build).
    """
    if not config.configured:
        return None, [Problem("command_executor.kubernetes", "not configured (the system config has no kubernetes section with name)")]
    at = f"{where}: kubernetes"
    raw = sections.get("kubernetes") or {}
    section, problems = structure_strict(KubernetesSection, raw, at)
    if section is None and isinstance(raw, Mapping) and problems:  # check the known keys too
        names = {f.name for f in attrs.fields(KubernetesSection)}
        section, errors = structure_strict(KubernetesSection, {k: v for k, v in raw.items() if k in names}, at)
        if errors:
            return None, problems
    if section is None:
        return None, problems
    _check_pod(section.Pod, at, problems)
    _check_object(section.PersistentVolume, "PersistentVolume", at, problems)
    _check_object(section.PersistentVolumeClaim, "PersistentVolumeClaim", at, problems)
    if section.resources is not None:
        _check_quantity(section.resources.cpu, f"{at}.resources.cpu", problems)
        _check_quantity(section.resources.memory, f"{at}.resources.memory", problems)
    for key in section.node_selector:
        if not key:
            problems.append(Problem(f"{at}.node_selector", "has an empty label key", fatal=True))
    if section.pod_template is not None and not isinstance(section.pod_template.get("spec", {}), Mapping):
        problems.append(Problem(f"{at}.pod_template.spec", "must be a mapping (a pod spec)", fatal=True))
    secret_env = _secret_env(section, at, problems)
    if problems:
        return None, problems
    docker = sections.get("docker")
    image = docker.get("image") if isinstance(docker, Mapping) else None
    if isinstance(docker, Mapping) and docker.get("build"):
        return None, [Problem(f"{where}: docker.build", "Kubernetes cannot build images: push the image to a registry and set docker.image")]
    if not image:
        return None, [Problem(where, "sets no docker.image (the image the Job's container runs)")]
    return KubernetesTaskSettings(image=str(image), section=section, secret_env=secret_env), []
