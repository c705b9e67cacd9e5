"""``offload check kubernetes``, config errors, ``offload gc``, secrets, the Job's spec, and the
API calls a poll makes, against the real API server."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_harness.cluster import Cluster
from k8s_offload import TASK, cluster_section, k8s_executor  # noqa: F401 - a fixture

import offload
from offload.testing import make_request, wait_for
from offload_kubernetes import schedule

Make = Callable[..., offload.Executor]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offload", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def write_config(path: Path, section: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"command_executor": {"type": "kubernetes", "kubernetes": section}}))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def test_check_reports_server_namespace_permissions_and_dry_run(kube_cluster: Cluster, kube_namespace: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "offload.yml", cluster_section(kube_cluster, kube_namespace))
    done = cli("check", "kubernetes", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok   kubernetes: ready (namespace {kube_namespace}, no storage" in done.stdout
    assert "Kubernetes v1.20.2" in done.stdout and "passes the server's dry run" in done.stdout
    assert kube_cluster.token("offload") not in done.stdout + done.stderr

    config = write_config(tmp_path / "nobody.yml", cluster_section(kube_cluster, kube_namespace, user="nobody"))
    done = cli("check", "kubernetes", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert f"FAIL kubernetes: not allowed in namespace {kube_namespace}: create jobs" in done.stdout
    assert "get pods/log" in done.stdout

    section = cluster_section(kube_cluster, kube_namespace)
    section["test"]["oauth_token"] = "not-a-token"
    done = cli("check", "kubernetes", "-c", str(write_config(tmp_path / "bad.yml", section)), cwd=tmp_path)
    assert done.returncode == 1
    assert "rejected the credentials (401)" in done.stdout and "not-a-token" not in done.stdout


def test_a_kubeconfig_works_as_well_as_digdags_keys(kube_cluster: Cluster, kube_namespace: str, tmp_path: Path) -> None:
    kubeconfig = kube_cluster.kubeconfig("offload", tmp_path / "kubeconfig", namespace=kube_namespace)
    config = write_config(tmp_path / "offload.yml", {"name": "k", "k": {"kube_config_path": str(kubeconfig)}})
    done = cli("check", "kubernetes", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"namespace {kube_namespace}" in done.stdout  # the context's namespace


def test_every_wrong_key_is_reported_with_its_path_and_exit_2_and_no_secret_is_echoed(tmp_path: Path) -> None:
    secret = "sekrit-token-value"
    section = {
        "name": "c",
        "c": {"master": "10.0.0.1:6443", "oauth_token": secret, "certs_ca_data": "not base64 pem", "namspace": "x", "pending_timeout": 0},
        "config_storage": {"in": {"type": "s3", "s3": {"bucket": "b"}}},
        "extra": 1,
    }
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo hi\n")
    done = cli("run", "flow.dig", "-c", str(write_config(tmp_path / "offload.yml", section)), cwd=tmp_path)
    assert done.returncode == 2
    out = done.stdout + done.stderr
    wrong = ("c.master:", "c.certs_ca_data:", "c: unknown key 'namspace'", "c.pending_timeout:", "extra:")
    for where in (f"command_executor.kubernetes.{key}" for key in wrong):
        assert where in out, out
    assert "config_storage.out" in out
    assert secret not in out and "Traceback" not in out
    assert not (tmp_path / ".offload" / "io").exists() or not any((tmp_path / ".offload" / "io").iterdir())


def test_a_wrong_task_section_stops_the_run_before_anything_is_launched(kube_cluster: Cluster, kube_namespace: str, tmp_path: Path) -> None:
    (tmp_path / "flow.dig").write_text(
        "_export:\n  docker: {image: any}\n"
        "+a:\n  sh>: echo hi\n  kubernetes:\n    Pod: {resources: {limits: {cpu: lots}}, volumeMounts: [{name: nope, mountPath: /x}]}\n"
        "    env_from_secrets: {TOKEN: no-key-given}\n    nodeSelector: {a: b}\n"
    )
    done = cli("run", "flow.dig", "-c", str(write_config(tmp_path / "offload.yml", cluster_section(kube_cluster, kube_namespace))), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stderr
    assert "kubernetes.Pod.resources.limits.cpu: is not a Kubernetes quantity" in out
    assert "kubernetes.Pod.volumeMounts[0].name: names no volume of Pod.volumes: 'nope'" in out
    assert "kubernetes.env_from_secrets.TOKEN: must be SECRET/KEY" in out and "kubernetes: unknown key 'nodeSelector'" in out
    apis = kube_cluster.apis("admin")
    try:
        assert apis.batch.list_namespaced_job(kube_namespace).items == []
    finally:
        apis.client.close()


def test_secret_values_reach_the_command_by_reference_never_in_the_spec(
    k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, project: Path  # noqa: F811
) -> None:
    apis = kube_cluster.apis("admin")
    value = "s3cr3t-value-in-a-secret"
    try:
        body = {"metadata": {"name": "db"}, "data": {"password": base64.b64encode(value.encode()).decode()}}
        apis.core.create_namespaced_secret(kube_namespace, body)
        executor = k8s_executor()
        config = {**TASK, "kubernetes": {"env_from_secrets": {"DB_PASSWORD": "db/password"}}}
        handle = executor.submit(make_request(project, 'echo "pw=$DB_PASSWORD"', config), backend="kubernetes")
        job = apis.client.sanitize_for_serialization(apis.batch.read_namespaced_job(str(handle.state["job"]), kube_namespace))
        assert value not in str(job)
        env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"key": "password", "name": "db"}}} in env
        result, logs = wait_for(executor, handle)
        assert result.ok and f"pw={value}" in logs
    finally:
        apis.client.close()


def test_the_job_carries_resources_labels_and_the_pod_template_under_offloads_spec(
    k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, project: Path  # noqa: F811
) -> None:
    kubernetes = {
        "resources": {"cpu": "250m", "memory": "64Mi"},
        "Pod": {"resources": {"limits": {"memory": "128Mi"}}},
        "labels": {"team": "data"},
        "annotations": {"owner": "me"},
        "pod_template": {"spec": {"terminationGracePeriodSeconds": 7, "restartPolicy": "Always", "containers": [{"name": "x", "workingDir": "/tmp"}]}},
    }
    executor = k8s_executor()
    request = make_request(project, "echo spec", {**TASK, "kubernetes": kubernetes}, timeout=300)
    handle = executor.submit(request, backend="kubernetes")
    apis = kube_cluster.apis("admin")
    try:
        job = apis.client.sanitize_for_serialization(apis.batch.read_namespaced_job(str(handle.state["job"]), kube_namespace))
    finally:
        apis.client.close()
    spec = job["spec"]
    pod = spec["template"]["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] == 86400
    assert pod["activeDeadlineSeconds"] == 300
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] == 7
    (container,) = pod["containers"]
    assert container["name"] == "task" and container["workingDir"] == "/tmp"
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "128Mi"}}
    assert job["metadata"]["labels"]["team"] == "data" and spec["template"]["metadata"]["annotations"]["owner"] == "me"
    assert job["metadata"]["annotations"]["offload.task-id"] == request.task_id
    result, logs = wait_for(executor, handle)
    assert result.ok and logs == ["spec"]


def test_a_poll_costs_one_list_and_the_log_reads_whatever_the_number_of_tasks(
    k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, project: Path  # noqa: F811
) -> None:
    executor = k8s_executor()
    process = {**TASK, "kubernetes": {"annotations": {"fake-kubelet.offload.test/runtime": "process"}}}
    handles = [executor.submit(make_request(project, "echo up; sleep 30", process), backend="kubernetes") for _ in range(8)]
    deadline = time.monotonic() + 120
    while True:
        statuses = executor.poll(handles)
        handles = [s.handle or h for s, h in zip(statuses, handles, strict=True)]
        if all(s.state is offload.TaskState.RUNNING for s in statuses) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    mark = kube_cluster.audit_mark()
    executor.poll(handles)
    calls = [r for r in kube_cluster.requests("offload", since=mark) if kube_namespace in r["requestURI"]]
    lists = [r for r in calls if r["verb"] == "list"]
    logs = [r for r in calls if "/log" in r["requestURI"]]
    assert [r["objectRef"]["resource"] for r in lists] == ["pods"], calls  # one LIST of pods for 8 running tasks
    assert len(logs) <= 8 and len(calls) == len(lists) + len(logs), calls
    # a quiet pod's log is not read again before its handle's log_due (the backoff)
    quiet = [h.with_state(log_due=time.time() + 3600, log_quiet=5) for h in handles]
    mark = kube_cluster.audit_mark()
    executor.poll(quiet)
    assert [r for r in kube_cluster.requests("offload", since=mark) if "/log" in r["requestURI"]] == []
    for handle in handles:
        executor.cancel(handle, grace=0)
    for handle in handles:
        wait_for(executor, handle)


def test_with_more_running_pods_than_a_polls_cap_every_tasks_lines_arrive_once_and_in_order(
    k8s_executor: Make, project: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setattr(schedule, "LOG_READS_PER_POLL", 2)
    executor = k8s_executor()
    kube = executor.backends.get("kubernetes").kube  # type: ignore[attr-defined]
    reads = [0]
    real = kube.request

    def counting(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if path.endswith("/log"):
            reads[0] += 1
        return real(method, path, *args, **kwargs)

    monkeypatch.setattr(kube, "request", counting)
    process = {**TASK, "kubernetes": {"annotations": {"fake-kubelet.offload.test/runtime": "process"}}}
    script = 'i=0; while [ $i -lt 15 ]; do echo "line $i"; i=$((i+1)); sleep 0.2; done'
    running = [executor.submit(make_request(project, script, process), backend="kubernetes") for _ in range(6)]
    lines: dict[str, list[str]] = {h.task_id: [] for h in running}
    results: dict[str, offload.Result] = {}
    deadline = time.monotonic() + 180
    while running and time.monotonic() < deadline:
        before = reads[0]
        statuses = executor.poll(running)
        assert reads[0] - before <= 2  # the cap, whatever the number of pods
        still = []
        for handle, status in zip(running, statuses, strict=True):
            lines[handle.task_id].extend(status.logs)
            if status.state.finished:
                results[handle.task_id] = executor.collect(status.handle or handle)
            else:
                still.append(status.handle or handle)
        running = still
        time.sleep(0.1)
    assert len(results) == 6 and all(r.ok for r in results.values()), results
    assert all(got == [f"line {i}" for i in range(15)] for got in lines.values()), lines


def test_gc_removes_jobs_and_configmaps_that_no_journal_tracks(
    k8s_executor: Make, kube_cluster: Cluster, kube_namespace: str, project: Path  # noqa: F811
) -> None:
    executor = k8s_executor()
    kept = executor.submit(make_request(project, "echo kept", TASK), backend="kubernetes")
    dropped = executor.submit(make_request(project, "echo dropped", TASK), backend="kubernetes")
    assert executor.collect_garbage("kubernetes", [kept], dry_run=True, project_dir=str(project)) == []  # unfinished and young: kept
    executor.backends.get("kubernetes").gc_min_age = 0  # type: ignore[attr-defined]
    would = executor.collect_garbage("kubernetes", [kept], dry_run=True, project_dir=str(project))
    assert would == [f"would delete Job {kube_namespace}/{dropped.state['job']}"]
    assert executor.collect_garbage("kubernetes", [kept], project_dir=str(project)) == [would[0].replace("would delete", "deleted")]
    result, logs = wait_for(executor, kept)
    assert result.ok and logs == ["kept"]
    other = project.parent / "other"
    other.mkdir()
    assert executor.collect_garbage("kubernetes", [], dry_run=True, project_dir=str(other)) == []  # another project's Jobs are its own


def test_digdags_properties_configure_the_backend(kube_cluster: Cluster, kube_namespace: str, tmp_path: Path) -> None:
    own = cluster_section(kube_cluster, kube_namespace)["test"]
    lines = ["agent.command_executor.type = kubernetes", "agent.command_executor.kubernetes.name = test"]
    lines += [f"agent.command_executor.kubernetes.test.{key} = {value}" for key, value in own.items()]
    lines += ["agent.command_executor.kubernetes.test.pending_timeout = 30", "agent.command_executor.kubernetes.test.default_pod_ttl = 600"]
    (tmp_path / "server.properties").write_text("\n".join(lines) + "\n")
    done = cli("check", "kubernetes", "-c", "server.properties", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok   kubernetes: ready (namespace {kube_namespace}" in done.stdout
