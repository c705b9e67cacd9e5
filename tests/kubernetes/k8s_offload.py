"""How the Kubernetes tests configure offload against the session's cluster (``kube_cluster``)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from k8s_harness.cluster import Cluster
from k8s_harness.kubelet import IMAGE

import offload

#: The image every test task names: the fake kubelet runs the offline base image for it.
TASK = {"docker": {"image": IMAGE}}


def cluster_section(cluster: Cluster, namespace: str, user: str = "offload", **settings: Any) -> dict[str, Any]:
    """``command_executor.kubernetes`` with Digdag's keys: master, certs_ca_data, oauth_token, namespace."""
    ca = base64.b64encode(cluster.ca_data.encode()).decode()
    own = {"master": cluster.server, "certs_ca_data": ca, "oauth_token": cluster.token(user), "namespace": namespace, **settings}
    return {"name": "test", "test": own}


def system_config(cluster: Cluster, namespace: str, section: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    return {"command_executor": {"type": "kubernetes", "kubernetes": section or cluster_section(cluster, namespace, **settings)}}


@pytest.fixture
def k8s_executor(kube_cluster: Cluster, kube_namespace: str) -> Iterator[Callable[..., offload.Executor]]:
    """Executors with the kubernetes backend forced, in the test's namespace; closed at the end."""
    made: list[offload.Executor] = []

    def make(section: dict[str, Any] | None = None, **settings: Any) -> offload.Executor:
        executor = offload.Executor(system_config(kube_cluster, kube_namespace, section, **settings))
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()
