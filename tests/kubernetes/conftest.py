"""Fixtures of the Kubernetes tests: one real control plane (v1.20.2) and one fake kubelet
for the session (``k8s_harness``), a fresh namespace per test, admin API objects.

Nothing here reaches a real cluster: KUBECONFIG points at a file of this session (it does
not exist until the cluster is up, then holds the ``offload`` user's kubeconfig), the
in-cluster variables are removed, and 127.0.0.1 bypasses any proxy. Without the binaries
(``bash scripts/setup_kubernetes.sh``) or a Docker Engine with the test image
(``bash scripts/setup_docker.sh``) the tests are skipped, except in CI (``CI=true``) where
that is a failure.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from k8s_harness.cluster import Cluster, KubeApis
from k8s_harness.controlplane import ControlPlane, MissingBinary
from k8s_harness.kubelet import IMAGE

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="offload-k8s-env-"))
KUBECONFIG = _SESSION_DIR / "kubeconfig"
atexit.register(shutil.rmtree, _SESSION_DIR, True)
os.environ["KUBECONFIG"] = str(KUBECONFIG)
# kubernetes.config reads $KUBECONFIG once, when imported: correct it if that already happened.
if "kubernetes.config.kube_config" in sys.modules:
    setattr(sys.modules["kubernetes.config.kube_config"], "KUBE_CONFIG_DEFAULT_LOCATION", str(KUBECONFIG))  # noqa: B010
for _name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
    os.environ.pop(_name, None)
for _name in ("NO_PROXY", "no_proxy"):
    os.environ[_name] = ",".join(filter(None, [os.environ.get(_name), "127.0.0.1", "localhost"]))


def _problem() -> str | None:
    try:
        ControlPlane(_SESSION_DIR).check_binaries()
    except MissingBinary as e:
        return str(e)
    try:
        import docker
        import docker.errors

        client = docker.from_env()
        try:
            client.images.get(IMAGE)
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001 - any failure means: no usable engine
        return f"the fake kubelet's docker runtime needs a Docker Engine with {IMAGE} ({e}); run: bash scripts/setup_docker.sh"
    return None


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's cluster: ``.control_plane`` (ControlPlane), ``.kubelet`` (FakeKubelet), shortcuts."""
    problem = _problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    cluster = Cluster(tmp_path_factory.mktemp("kubernetes"))
    cluster.start()
    cluster.kubeconfig("offload", KUBECONFIG)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _cluster_alive(request: pytest.FixtureRequest) -> None:
    """Before a test of the cluster: fail at once, naming the log, if a component has died."""
    if "kube_cluster" in request.fixturenames:
        cluster: Cluster = request.getfixturevalue("kube_cluster")
        cluster.check()


@pytest.fixture(scope="session")
def kube_admin(kube_cluster: Cluster) -> Iterator[KubeApis]:
    """Admin's ``kubernetes.client`` API objects: ``.core``, ``.batch``, ``.coordination``, ``.client``."""
    apis = kube_cluster.apis("admin")
    yield apis
    apis.client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def kube_namespace(kube_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace; deleted (without waiting) after the test."""
    rest = kube_cluster.control_plane.rest("admin")
    name = f"t-{uuid.uuid4().hex[:10]}"
    rest.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        try:
            rest.delete(f"/api/v1/namespaces/{name}", {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"})
        finally:
            rest.close()
