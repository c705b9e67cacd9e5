"""From a pod's spec to what a runtime runs: the environment (``env`` with ``$(VAR)``
expansion, ``valueFrom`` secret, config-map and field references, ``envFrom``), the command
and arguments (expanded the same way) and the volumes, materialised under the kubelet's
directory (``configMap``, ``secret``, ``emptyDir``, ``hostPath``, ``persistentVolumeClaim``,
``downwardAPI``). Errors carry the real kubelet's messages.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from k8s_harness.rest import Rest
from k8s_harness.runtime import ContainerSpec, Mount

Fetch = Callable[[str, str, str], "dict[str, Any] | None"]


class ConfigError(Exception):
    """The container cannot be configured yet (``CreateContainerConfigError``); retried."""


class MountError(Exception):
    """A volume cannot be set up yet (the pod stays ``ContainerCreating``); retried."""


def fetcher(rest: Rest) -> Fetch:
    """``fetch(resource, namespace, name)``: the object, or None when there is none."""

    def fetch(resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(rest.get(f"/api/v1/namespaces/{namespace}/{resource}/{name}"))
        except ApiException as e:
            if e.status == 404:
                return None
            raise
    return fetch


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is ``$``, the rest stays."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _source(fetch: Fetch, kind: str, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
    """A config map's or secret's data as text; None when missing and optional."""
    resource = "configmaps" if kind == "configmap" else "secrets"
    obj = fetch(resource, namespace, name)
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{name}" not found')
    if kind == "secret":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def _field(pod: dict[str, Any], path: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    for prefix, mapping in (("metadata.labels", meta.get("labels")), ("metadata.annotations", meta.get("annotations"))):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((mapping or {}).get(path[len(prefix) + 2:-2], ""))
    values = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"), "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"), "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": "127.0.0.1", "status.podIP": "127.0.0.1", "status.podIPs": "127.0.0.1",
    }
    return str(values.get(path) or "")


def environment(pod: dict[str, Any], container: dict[str, Any], fetch: Fetch) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = ("configmap", source["configMapRef"]) if "configMapRef" in source else ("secret", source.get("secretRef") or {})
        data = _source(fetch, kind, namespace, ref.get("name", ""), bool(ref.get("optional")))
        for key, value in (data or {}).items():
            env[source.get("prefix", "") + key] = value
    for var in container.get("env") or []:
        name, ref = var["name"], var.get("valueFrom")
        if not ref:
            env[name] = expand(var.get("value", ""), env)
            continue
        for field, kind, label in (("secretKeyRef", "secret", "Secret"), ("configMapKeyRef", "configmap", "ConfigMap")):
            if field in ref:
                key_ref = ref[field]
                optional = bool(key_ref.get("optional"))
                data = _source(fetch, kind, namespace, key_ref.get("name", ""), optional)
                if data is None:
                    break
                if key_ref["key"] not in data:
                    if optional:
                        break
                    raise ConfigError(f"couldn't find key {key_ref['key']} in {label} {namespace}/{key_ref.get('name', '')}")
                env[name] = data[key_ref["key"]]
                break
        else:
            if "fieldRef" in ref:
                env[name] = _field(pod, ref["fieldRef"]["fieldPath"])
            else:
                env[name] = ""  # resourceFieldRef: not modelled
    return env


def _write_files(directory: Path, files: dict[str, bytes], items: list[dict[str, Any]] | None, default_mode: int | None,
                 missing: str) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    chosen = [(i["key"], i["path"], i.get("mode")) for i in items] if items else [(k, k, None) for k in files]
    for key, path, mode in chosen:
        if key not in files:
            raise MountError(f"{missing}: {key}")
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[key])
        target.chmod(mode if mode is not None else (default_mode if default_mode is not None else 0o644))


class Volumes:
    """The host directories of one pod's volumes, under ``pod_dir``; claims live in ``claims_dir``."""

    def __init__(self, pod: dict[str, Any], pod_dir: Path, claims_dir: Path, fetch: Fetch) -> None:
        self.pod, self.pod_dir, self.claims_dir, self.fetch = pod, pod_dir, claims_dir, fetch
        self.paths: dict[str, str] = {}

    def prepare(self) -> None:
        """Set up every volume (again); raises :class:`MountError` with the kubelet's message."""
        namespace = self.pod["metadata"]["namespace"]
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            target = self.pod_dir / "volumes" / name
            if "configMap" in volume or "secret" in volume:
                kind = "configmap" if "configMap" in volume else "secret"
                src = volume.get("configMap") or volume.get("secret") or {}
                ref = src.get("name") or src.get("secretName", "")
                resource = "configmaps" if kind == "configmap" else "secrets"
                obj = self.fetch(resource, namespace, ref)
                if obj is None and not src.get("optional"):
                    raise MountError(f'MountVolume.SetUp failed for volume "{name}" : {kind} "{ref}" not found')
                files = self._files(kind, obj or {})
                missing = "configmap references non-existent config key" if kind == "configmap" else "references non-existent secret key"
                _write_files(target, files, src.get("items"), src.get("defaultMode"), missing)
            elif "downwardAPI" in volume:
                files = {i["path"]: _field(self.pod, i["fieldRef"]["fieldPath"]).encode() for i in volume["downwardAPI"].get("items", []) if "fieldRef" in i}
                _write_files(target, files, None, volume["downwardAPI"].get("defaultMode"), "")
            elif "emptyDir" in volume:
                target.mkdir(parents=True, exist_ok=True)
                target.chmod(0o777)
            elif "hostPath" in volume:
                path = Path(volume["hostPath"]["path"])
                kind = volume["hostPath"].get("type", "")
                if kind == "FileOrCreate":
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                elif not path.exists():
                    if kind not in ("", "DirectoryOrCreate"):
                        raise MountError(f'MountVolume.SetUp failed for volume "{name}" : hostPath type check failed: {path} does not exist')
                    path.mkdir(parents=True)
                target = path
            elif "persistentVolumeClaim" in volume:
                target = self.claims_dir / namespace / volume["persistentVolumeClaim"]["claimName"]
                target.mkdir(parents=True, exist_ok=True)
            else:
                kinds = sorted(k for k in volume if k != "name")
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : the fake kubelet has no {kinds} volumes')
            self.paths[name] = str(target)

    @staticmethod
    def _files(kind: str, obj: dict[str, Any]) -> dict[str, bytes]:
        files = {k: (base64.b64decode(v) if kind == "secret" else v.encode()) for k, v in (obj.get("data") or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return files

    def mounts(self, container: dict[str, Any]) -> list[Mount]:
        result = []
        for vm in container.get("volumeMounts") or []:
            source = self.paths[vm["name"]]
            if vm.get("subPath"):
                source = os.path.join(source, vm["subPath"])
                if not os.path.exists(source):
                    os.makedirs(source)
            result.append(Mount(source, vm["mountPath"], bool(vm.get("readOnly"))))
        return result

    def remove(self) -> None:
        shutil.rmtree(self.pod_dir, ignore_errors=True)


def container_spec(pod: dict[str, Any], container: dict[str, Any], attempt: int, volumes: Volumes, fetch: Fetch) -> ContainerSpec:
    """What the runtime needs to start ``container``; raises :class:`ConfigError`."""
    env = environment(pod, container, fetch)
    command = [expand(a, env) for a in container["command"]] if container.get("command") else None
    args = [expand(a, env) for a in container["args"]] if container.get("args") else None
    security = {**(pod["spec"].get("securityContext") or {}), **(container.get("securityContext") or {})}
    user = None
    if security.get("runAsUser") is not None:
        user = str(security["runAsUser"]) + (f":{security['runAsGroup']}" if security.get("runAsGroup") is not None else "")
    meta = pod["metadata"]
    return ContainerSpec(
        namespace=meta["namespace"], pod=meta["name"], pod_uid=meta["uid"], name=container["name"], attempt=attempt,
        command=command, args=args, env=env, working_dir=container.get("workingDir"), mounts=volumes.mounts(container), user=user,
        annotations=dict(meta.get("annotations") or {}),
    )
