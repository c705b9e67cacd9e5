"""The ``command_executor.kubernetes`` section, in Digdag's shape, read strictly.

::

    command_executor:
      kubernetes:
        name: my-cluster                  # the cluster; its settings are under its name
        my-cluster:
          master: https://10.0.0.1:6443   # with certs_ca_data and oauth_token, or:
          kube_config_path: ~/.kube/config
          context: prod                   # (none of them: the default kubeconfig, then in-cluster)
          namespace: batch
        config_storage:                   # optional; without it small projects travel in a ConfigMap
          in:  {type: s3, s3: {bucket: my-bucket}}
          out: {type: s3, s3: {bucket: my-bucket}}

An empty section means "Kubernetes is not configured" (selection moves on). Every
wrong key is reported at once with its path; the token and the CA data are never
echoed. Nothing is checked against the cluster here (``offload check kubernetes`` does).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import attrs

from offload import BackendContext, Problem, StorageConfig, named_section, structure_strict

#: The most a project archive may weigh to travel in a ConfigMap (the API's limit is 1 MiB
#: per object, and ``binaryData`` is base64).
CONFIGMAP_LIMIT = 700 * 1024
SECRET_KEYS = ("oauth_token", "certs_ca_data")


@attrs.frozen
class ClusterSettings:
    """The keys under ``command_executor.kubernetes.<name>``: Digdag's and a few of offload's."""

    master: str | None = None
    certs_ca_data: str | None = attrs.field(default=None, repr=False)
    oauth_token: str | None = attrs.field(default=None, repr=False)
    namespace: str | None = None
    kube_config_path: str | None = None
    context: str | None = None
    #: ``ttlSecondsAfterFinished`` of every Job: a backstop only (offload deletes a Job it collected).
    default_pod_ttl: int = 86400
    #: Seconds a task may wait to start (unschedulable, image not pulled) before it fails.
    pending_timeout: float = 600.0
    #: Seconds of each API call (a log read or a LIST); a hung API server stalls no poll longer.
    request_timeout: float = 30.0
    #: The largest io archive (compressed bytes) sent back in the log when there is no storage.
    inline_output_limit: int = 512 * 1024
    #: Whether a task's container is created with ``imagePullPolicy: IfNotPresent`` (default) or as given.
    image_pull_policy: str | None = None
    labels: dict[str, str] = attrs.field(factory=dict)
    annotations: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class KubernetesConfig:
    """The parsed section; ``cluster`` is ``None`` when Kubernetes is not configured."""

    cluster: str | None = None
    settings: ClusterSettings = attrs.field(factory=ClusterSettings)
    #: ``config_storage.in``: where the project archive travels (``None``: in a ConfigMap).
    storage_in: StorageConfig | None = None
    #: ``config_storage.out``: where the io directory comes back (``None``: in the log).
    storage_out: StorageConfig | None = None

    @property
    def configured(self) -> bool:
        return self.cluster is not None

    @property
    def namespace(self) -> str:
        return self.settings.namespace or "default"


def _fatal(where: str, message: str) -> Problem:
    return Problem(where, message, fatal=True)


def ca_pem(data: str) -> bytes | None:
    """``certs_ca_data`` as PEM bytes: base64 of PEM (as in a kubeconfig) or PEM itself; ``None`` if neither."""
    text = data.strip()
    if text.startswith("-----BEGIN"):
        return text.encode() + b"\n"
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded.lstrip().startswith(b"-----BEGIN") else None


def _check(settings: ClusterSettings, where: str, problems: list[Problem]) -> None:
    if settings.master is not None and not settings.master.startswith(("https://", "http://")):
        problems.append(_fatal(f"{where}.master", f"must be the API server's URL (https://host:port), got {settings.master!r}"))
    if settings.master is not None and settings.kube_config_path is not None:
        problems.append(_fatal(f"{where}.kube_config_path", "give master (with oauth_token) or kube_config_path, not both"))
    if settings.master is None:
        for key in ("oauth_token", "certs_ca_data"):
            if getattr(settings, key) is not None:
                problems.append(_fatal(f"{where}.{key}", "needs master (the API server's URL)"))
    if settings.context is not None and settings.master is not None:
        problems.append(_fatal(f"{where}.context", "is a kubeconfig context: it goes with kube_config_path, not master"))
    if settings.certs_ca_data is not None and ca_pem(settings.certs_ca_data) is None:
        problems.append(_fatal(f"{where}.certs_ca_data", "must be the CA certificate, PEM or base64 of PEM (as certificate-authority-data in a kubeconfig)"))
    for key in ("default_pod_ttl", "inline_output_limit"):
        if getattr(settings, key) < 0:
            problems.append(_fatal(f"{where}.{key}", "must not be negative"))
    for key in ("pending_timeout", "request_timeout"):
        if getattr(settings, key) <= 0:
            problems.append(_fatal(f"{where}.{key}", "must be a positive number of seconds"))
    if settings.image_pull_policy not in (None, "Always", "IfNotPresent", "Never"):
        problems.append(_fatal(f"{where}.image_pull_policy", "must be Always, IfNotPresent or Never"))


def _storages(data: Any, where: str, context: BackendContext, problems: list[Problem]) -> tuple[StorageConfig | None, StorageConfig | None]:
    """``config_storage.in`` and ``.out`` (Digdag's keys), each parsed by the storage plugin it names."""
    if data is None:
        return None, None
    if not isinstance(data, Mapping):
        problems.append(_fatal(where, "must be a mapping with in and out (config_storage.in.type: s3, config_storage.in.s3.bucket: ...)"))
        return None, None
    for key in sorted(str(k) for k in data if k not in ("in", "out")):
        problems.append(_fatal(f"{where}.{key}", "unknown key (known keys: in, out)"))
    found: dict[str, StorageConfig | None] = {"in": None, "out": None}
    for key in ("in", "out"):
        if key in data:
            found[key], errors = context.storages.parse(data[key], f"{where}.{key}")
            problems.extend(errors)
    if (found["in"] is None) != (found["out"] is None) and not (set(data) - {"in", "out"}):
        missing = "out" if found["out"] is None else "in"
        problems.append(_fatal(f"{where}.{missing}", "required with the other: the project goes in and the io directory comes out through a storage"))
    return found["in"], found["out"]


def _known_only(section: Any) -> ClusterSettings | None:
    """The section without its unknown keys, so their neighbours are checked as well."""
    if not isinstance(section, Mapping):
        return None
    names = {f.name for f in attrs.fields(ClusterSettings)}
    settings, errors = structure_strict(ClusterSettings, {k: v for k, v in section.items() if k in names}, "")
    return settings if not errors else None


def parse_kubernetes_config(data: Mapping[str, Any], where: str, context: BackendContext) -> tuple[KubernetesConfig | None, list[Problem]]:
    """``data`` (the ``command_executor.kubernetes`` section) as a :class:`KubernetesConfig`, with every problem."""
    if not data:
        return KubernetesConfig(), []
    name, section, problems = named_section(data, where, "a name for the cluster", ("config_storage",), SECRET_KEYS)
    if name is None:
        return None, problems
    settings, errors = structure_strict(ClusterSettings, section, f"{where}.{name}")
    problems.extend(errors)
    checked = settings if settings is not None else _known_only(section)
    if checked is not None:
        _check(checked, f"{where}.{name}", problems)
    storage_in, storage_out = _storages(data.get("config_storage"), f"{where}.config_storage", context, problems)
    if problems or settings is None:
        return None, problems
    return KubernetesConfig(cluster=name, settings=settings, storage_in=storage_in, storage_out=storage_out), []
