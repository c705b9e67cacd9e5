"""What users of other Kubernetes runners complain about, each played against the real API
server: a pod that cannot start, OOM, eviction, a pod or Job deleted from outside, logs cut
short at the end, a driver restart that runs the task twice, cancel that leaves pods."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_harness.cluster import Cluster
from k8s_offload import TASK, k8s_executor  # noqa: F401 - a fixture

import offload
from offload import TaskState
from offload.testing import make_request, wait_for, wait_until_running

Make = Callable[..., offload.Executor]
KNOB = "fake-kubelet.offload.test/"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def task(**kubernetes: Any) -> dict[str, Any]:
    return {**TASK, "kubernetes": kubernetes}


def pods_of(cluster: Cluster, namespace: str, handle: offload.Handle) -> list[Any]:
    apis = cluster.apis("admin")
    try:
        return list(apis.core.list_namespaced_pod(namespace, label_selector=f"controller-uid={handle.state['job_uid']}").items)
    finally:
        apis.client.close()


def test_an_unschedulable_pod_is_pending_with_its_reason_then_fails_after_pending_timeout(k8s_executor: Make, project: Path) -> None:  # noqa: F811
    executor = k8s_executor(pending_timeout=4)
    handle = executor.submit(make_request(project, "echo never", task(node_selector={"pool": "none"})), backend="kubernetes")
    seen: list[TaskState] = []
    logs: list[str] = []
    deadline = time.monotonic() + 60
    while True:
        (status,) = executor.poll([handle])
        handle, logs, seen = status.handle or handle, logs + list(status.logs), [*seen, status.state]
        if status.state.finished or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(seen[:-1]) == {TaskState.PENDING}  # waiting, never reported as crashed or running
    assert any("waits to start: Unschedulable" in line for line in logs), logs
    result = executor.collect(handle)
    assert result.state is TaskState.FAILED
    assert "did not start within 4 s (pending_timeout): Unschedulable" in (result.error or "")


def test_an_image_that_cannot_be_pulled_shows_why_in_the_log_and_fails(k8s_executor: Make, project: Path) -> None:  # noqa: F811
    executor = k8s_executor(pending_timeout=10)  # the reason is in the log long before
    request = make_request(project, "echo never", {"docker": {"image": "unpullable.example/none:1"}})
    result, logs = wait_for(executor, executor.submit(request, backend="kubernetes"))
    assert result.state is TaskState.FAILED
    assert any("ErrImagePull" in line or "ImagePullBackOff" in line for line in logs), logs
    assert "pending_timeout" in (result.error or "")


def test_an_oom_killed_container_fails_with_oomkilled(k8s_executor: Make, project: Path) -> None:  # noqa: F811
    executor = k8s_executor()
    request = make_request(project, "echo started; sleep 60", task(annotations={KNOB + "oom-after": "1"}))
    result, logs = wait_for(executor, executor.submit(request, backend="kubernetes"))
    assert result.state is TaskState.FAILED
    assert result.exit_code == 137
    assert "OOMKilled" in (result.error or "")
    assert "started" in logs


def test_an_evicted_pod_fails_the_task_with_the_reason(k8s_executor: Make, project: Path) -> None:  # noqa: F811
    executor = k8s_executor()
    request = make_request(project, "echo started; sleep 60", task(annotations={KNOB + "evict-after": "1"}))
    result, _ = wait_for(executor, executor.submit(request, backend="kubernetes"))
    assert result.state is TaskState.FAILED
    assert "evicted" in (result.error or "")


def test_a_pod_deleted_from_outside_fails_the_task_and_is_not_run_again(
    k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, project: Path  # noqa: F811
) -> None:
    executor = k8s_executor()
    request = make_request(project, "echo started; sleep 60", TASK)
    handle = wait_until_running(executor, executor.submit(request, backend="kubernetes"))
    (pod,) = pods_of(kube_cluster, kube_namespace, handle)
    apis = kube_cluster.apis("admin")
    try:
        apis.core.delete_namespaced_pod(pod.metadata.name, kube_namespace, grace_period_seconds=1)
    finally:
        apis.client.close()
    result, _ = wait_for(executor, handle)
    assert result.state is TaskState.FAILED
    assert "deleted outside offload" in (result.error or "")
    deadline = time.monotonic() + 30
    while pods_of(kube_cluster, kube_namespace, handle) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pods_of(kube_cluster, kube_namespace, handle) == []  # no replacement pod runs the task again


def test_a_job_deleted_from_outside_fails_the_task_rather_than_hang(k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, project: Path) -> None:  # noqa: F811
    executor = k8s_executor()
    handle = wait_until_running(executor, executor.submit(make_request(project, "sleep 60", TASK), backend="kubernetes"))
    apis = kube_cluster.apis("admin")
    try:
        apis.batch.delete_namespaced_job(str(handle.state["job"]), kube_namespace, propagation_policy="Background")
    finally:
        apis.client.close()
    result, _ = wait_for(executor, handle)
    assert result.state is TaskState.FAILED
    assert "deleted outside offload" in (result.error or "")


def test_the_log_is_complete_to_its_last_line_each_line_once(k8s_executor: Make, project: Path) -> None:  # noqa: F811
    executor = k8s_executor()
    script = "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done; echo done-err >&2; printf 'the very end'"
    result, logs = wait_for(executor, executor.submit(make_request(project, script, TASK), backend="kubernetes"))
    assert result.ok
    assert [line for line in logs if line.startswith("line-")] == [f"line-{i}" for i in range(3000)]
    # stdout and stderr are two streams: their order is kept within each, not across them
    assert [line for line in logs if line != "done-err"][-1] == "the very end" and logs.count("done-err") == 1


def test_a_driver_that_restarts_before_journaling_adopts_the_job_instead_of_running_it_twice(
    k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, project: Path  # noqa: F811
) -> None:
    request = make_request(project, "echo once >> /tmp/offload-k8s-runs-$$; echo ran; sleep 2", TASK)
    first = k8s_executor()
    first.submit(request, backend="kubernetes")  # the driver dies here: its handle is never journaled
    second = k8s_executor()
    adopted = second.adopt(request, backend="kubernetes")
    assert adopted is not None
    again = second.submit(request, backend="kubernetes")  # a create that answers 409 adopts too
    assert again.state["job_uid"] == adopted.state["job_uid"]
    result, logs = wait_for(second, adopted)
    assert result.ok and logs.count("ran") == 1
    apis = kube_cluster.apis("admin")
    try:
        jobs = apis.batch.list_namespaced_job(kube_namespace, label_selector="app.kubernetes.io/managed-by=offload").items
    finally:
        apis.client.close()
    assert len([j for j in jobs if j.metadata.deletion_timestamp is None]) == 0


def test_cancel_stops_the_pod_within_the_grace_period_and_leaves_nothing(
    k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, project: Path  # noqa: F811
) -> None:
    executor = k8s_executor()
    script = "trap 'echo got TERM; exit 143' TERM; echo started; while true; do sleep 0.2; done"
    handle = wait_until_running(executor, executor.submit(make_request(project, script, TASK), backend="kubernetes"))
    executor.cancel(handle, grace=5)
    result, _ = wait_for(executor, handle)
    assert result.state is TaskState.CANCELLED
    deadline = time.monotonic() + 30
    while pods_of(kube_cluster, kube_namespace, handle) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pods_of(kube_cluster, kube_namespace, handle) == []


def test_a_project_too_big_for_a_configmap_names_the_storage_keys_to_set(k8s_executor: Make, project: Path) -> None:  # noqa: F811
    import os

    (project / "big.bin").write_bytes(os.urandom(900 * 1024))
    executor = k8s_executor()
    with pytest.raises(offload.BackendError, match=r"config_storage\.in\.type: s3 or gcs"):
        executor.submit(make_request(project, "true", TASK), backend="kubernetes")
