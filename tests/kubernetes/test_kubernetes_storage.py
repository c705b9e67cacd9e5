"""``config_storage`` (Digdag's keys): the project goes in and the io directory comes back
through presigned URLs of an S3 bucket (the moto server of the ECS tests on 127.0.0.1),
which the pod's container reaches with curl; nothing of it travels in a ConfigMap."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from k8s_harness.cluster import Cluster
from k8s_offload import TASK, cluster_section, k8s_executor  # noqa: F401 - a fixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ecs"))  # the shared AWS test server

from ecs_harness.offline import offline_aws_environment

offline_aws_environment()

from ecs_harness.server import MotoServer  # noqa: E402

import offload  # noqa: E402
from offload.testing import make_request, wait_for  # noqa: E402

BUCKET = "offload-k8s-temporal"
Make = Callable[..., offload.Executor]


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = MotoServer()
    server.start()
    kw = {"endpoint_url": server.url, "region_name": "us-east-1", "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    boto3.client("s3", **kw).create_bucket(Bucket=BUCKET)
    yield server.url
    server.stop()


def storage_section(url: str) -> dict[str, Any]:
    s3 = {"bucket": BUCKET, "endpoint": url, "region": "us-east-1", "credentials": {"access-key-id": "k", "secret-access-key": "s"}}
    return {"in": {"type": "s3", "s3": s3}, "out": {"type": "s3", "s3": dict(s3)}}


def test_a_big_project_and_io_directory_travel_through_the_storage(
    k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, s3_url: str, tmp_path: Path  # noqa: F811
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))  # too big for a ConfigMap
    section = {**cluster_section(kube_cluster, kube_namespace), "config_storage": storage_section(s3_url)}
    executor = k8s_executor(section)
    script = (
        'sha256sum big.bin | cut -c1-16; head -c 3000000 /dev/urandom > "$OFFLOAD_IO_DIR/out.bin"; '
        'echo \'{"store_params": {"via": "s3"}}\' > "$OFFLOAD_IO_DIR/output.json"'
    )
    handle = executor.submit(make_request(project, script, TASK), backend="kubernetes")
    apis = kube_cluster.apis("admin")
    try:
        job = apis.batch.read_namespaced_job(str(handle.state["job"]), kube_namespace)
        assert not any(v.config_map for v in job.spec.template.spec.volumes or []), "the project went through the storage"
        assert apis.core.list_namespaced_config_map(kube_namespace, label_selector="app.kubernetes.io/managed-by=offload").items == []
        assert "X-Amz-Signature" in job.spec.template.spec.containers[0].command[2]  # a presigned URL, no credentials
        assert "secret-access-key" not in str(job) and '"s"' not in str(job.spec.template.spec.containers[0].env)
    finally:
        apis.client.close()
    result, logs = wait_for(executor, handle)
    import hashlib

    assert result.ok, (result, logs)
    assert logs == [hashlib.sha256((project / "big.bin").read_bytes()).hexdigest()[:16]]
    assert result.store_params == {"via": "s3"}
    assert (Path(handle.io_path) / "out.bin").stat().st_size == 3000000
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=str(handle.state["input_key"]))  # deleted on collect


def test_check_names_the_storage(kube_cluster: Cluster, kube_namespace: str, s3_url: str, tmp_path: Path) -> None:
    section = {**cluster_section(kube_cluster, kube_namespace), "config_storage": storage_section(s3_url)}
    with offload.Executor({"command_executor": {"type": "kubernetes", "kubernetes": section}}) as executor:
        health = executor.check("kubernetes")
    assert health.ok, health
    assert f"storage s3://{BUCKET}/" in health.summary
