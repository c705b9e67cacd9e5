"""A control plane and its fake kubelet, started and stopped together."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client

from k8s_harness.controlplane import DEFAULT_BIN_DIR, ControlPlane
from k8s_harness.kubelet import IMAGE, FakeKubelet
from k8s_harness.rest import configuration


@dataclass
class KubeApis:
    """The ``kubernetes`` client's API objects with one user's token (the ``kube_admin`` fixture: admin's)."""

    client: kubernetes.client.ApiClient
    core: kubernetes.client.CoreV1Api
    batch: kubernetes.client.BatchV1Api
    coordination: kubernetes.client.CoordinationV1Api

    @classmethod
    def of(cls, client: kubernetes.client.ApiClient) -> KubeApis:
        k = kubernetes.client
        return cls(client, k.CoreV1Api(client), k.BatchV1Api(client), k.CoordinationV1Api(client))


class Cluster:
    """``control_plane`` + ``kubelet`` under ``workdir``; the shortcuts below are the control plane's."""

    def __init__(self, workdir: Path | str, *, runtime: str = "docker", image: str = IMAGE, bin_dir: Path | str = DEFAULT_BIN_DIR,
                 detach: bool = False) -> None:
        self.workdir = Path(workdir)
        self.control_plane = ControlPlane(self.workdir, bin_dir, detach=detach)
        self.kubelet = FakeKubelet(self.control_plane, self.workdir / "kubelet", runtime=runtime, image=image, detach=detach)
        self.startup_seconds = 0.0

    def start(self) -> None:
        started = time.monotonic()
        self.control_plane.start()
        try:
            self.kubelet.start()
        except BaseException:
            self.control_plane.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        try:
            self.kubelet.stop()
        finally:
            self.control_plane.stop()

    # -- shortcuts ------------------------------------------------------------------
    @property
    def server(self) -> str:
        return self.control_plane.server

    @property
    def ca_data(self) -> str:
        return self.control_plane.ca_data

    @property
    def ca_file(self) -> str:
        return self.control_plane.ca_file

    @property
    def node_name(self) -> str:
        return self.kubelet.node_name

    def token(self, name: str = "offload") -> str:
        return self.control_plane.token(name)

    def kubeconfig(self, user: str = "offload", path: Path | str | None = None, namespace: str | None = None) -> Path:
        return self.control_plane.kubeconfig(user, path, namespace)

    def audit_mark(self) -> int:
        return self.control_plane.audit_mark()

    def requests(self, user: str = "offload", since: int = 0) -> list[dict[str, Any]]:
        return self.control_plane.requests(user, since)

    def api_client(self, user: str = "admin") -> kubernetes.client.ApiClient:
        """A ``kubernetes`` client for ``user`` (CA verified, no proxy); close it when done."""
        return kubernetes.client.ApiClient(configuration(self.server, self.token(user), self.ca_file))

    def apis(self, user: str = "admin") -> KubeApis:
        """:class:`KubeApis` for ``user``; close ``.client`` when done."""
        return KubeApis.of(self.api_client(user))

    def check(self) -> None:
        """Raise (naming the log file) if any process of the cluster has died."""
        self.control_plane.check()
        self.kubelet.check()
