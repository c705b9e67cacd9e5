"""Workflows through the real ``offload`` CLI on Kubernetes: killed and resumed, interrupted
with Ctrl-C, twenty tasks at once, params passed between tasks.

A task's container sees the project as a copy, so the tasks leave their marks in a host
directory mounted into each pod (``Pod.volumes`` with ``hostPath``, Digdag's keys): what a
driver restart must not repeat is visible there."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_harness.cluster import Cluster
from k8s_harness.kubelet import IMAGE
from k8s_offload import cluster_section

from offload.testing import wait_for_line

OFFLOAD = [sys.executable, "-m", "offload.workflow.cli"]
PROCESS = {"fake-kubelet.offload.test/runtime": "process"}


def header(shared: Path, annotations: dict[str, str] | None = None) -> str:
    kubernetes: dict[str, Any] = {
        "Pod": {"volumes": [{"name": "shared", "hostPath": {"path": str(shared)}}], "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    }
    if annotations:
        kubernetes = {"annotations": annotations}
    return "_export: " + json.dumps({"docker": {"image": IMAGE}, "kubernetes": kubernetes}) + "\n"


@pytest.fixture
def project(tmp_path: Path, kube_cluster: Cluster, kube_namespace: str) -> Path:
    project = tmp_path / "project"
    (project / "shared").mkdir(parents=True)
    config = {"command_executor": {"type": "kubernetes", "kubernetes": cluster_section(kube_cluster, kube_namespace)}}
    (project / "offload.yml").write_text(yaml.safe_dump(config))
    return project


def start(project: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*OFFLOAD, "run", "flow.dig", "-c", "offload.yml"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OFFLOAD, "run", "flow.dig", "-c", "offload.yml"], cwd=project, capture_output=True, text=True, timeout=300)


def live_pods(cluster: Cluster, namespace: str) -> list[str]:
    apis = cluster.apis("admin")
    try:
        pods = apis.core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/managed-by=offload").items
    finally:
        apis.client.close()
    return [p.metadata.name for p in pods]


def test_sigkill_then_run_again_reattaches_to_the_job_and_runs_nothing_twice(project: Path, kube_cluster: Cluster, kube_namespace: str) -> None:
    shared = project / "shared"
    (project / "flow.dig").write_text(
        header(shared)
        + "+first:\n  sh>: echo first >> /shared/runs.log\n"
        + "+slow:\n  sh>: |\n"
        + "    echo slow-started >> /shared/runs.log\n    echo slow is running\n"
        + "    while [ ! -f /shared/release ]; do sleep 0.1; done\n"
        + "    echo slow >> /shared/runs.log\n"
        + '    echo \'{"store_params": {"token": "from-slow"}}\' > "$OFFLOAD_IO_DIR/output.json"\n'
        + '+last:\n  sh>: echo "last ${token}" >> /shared/runs.log\n'
    )
    driver = start(project)
    wait_for_line(driver, "slow is running")
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    assert (shared / "runs.log").read_text().splitlines() == ["first", "slow-started"]
    (shared / "release").write_text("")  # the pod outlived its driver and can finish now
    again = run(project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "+flow+slow: re-attached" in again.stderr
    assert (shared / "runs.log").read_text().splitlines() == ["first", "slow-started", "slow", "last from-slow"]
    assert live_pods(kube_cluster, kube_namespace) == [] or _eventually_no_pods(kube_cluster, kube_namespace)


def _eventually_no_pods(cluster: Cluster, namespace: str) -> bool:
    deadline = time.monotonic() + 30
    while live_pods(cluster, namespace) and time.monotonic() < deadline:
        time.sleep(0.2)
    return live_pods(cluster, namespace) == []


def test_ctrl_c_cancels_every_task_of_the_run_and_leaves_no_pod(project: Path, kube_cluster: Cluster, kube_namespace: str) -> None:
    (project / "flow.dig").write_text(
        header(project / "shared", PROCESS)
        + "+group:\n  _parallel: true\n"
        + "  +a:\n    sh>: echo a-running; sleep 300\n"
        + "  +b:\n    sh>: echo b-running; sleep 300\n"
        + "+never:\n  sh>: echo never\n"
    )
    driver = start(project)
    seen = wait_for_line(driver, "-running")
    other = "b-running" if "a-running" in seen[-1] else "a-running"
    seen += wait_for_line(driver, other)
    driver.send_signal(signal.SIGINT)
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, "".join(seen) + output
    assert "cancelled" in output and "never" not in output.replace("+flow+never", "")
    assert _eventually_no_pods(kube_cluster, kube_namespace), live_pods(kube_cluster, kube_namespace)


def test_twenty_parallel_tasks_and_params_between_tasks(project: Path, kube_cluster: Cluster, kube_namespace: str) -> None:
    tasks = "".join(
        f'  +t{i}:\n    sh>: |\n      echo "task {i} of ${{label}}"; echo \'{{"store_params": {{"n{i}": {i}}}}}\' > "$OFFLOAD_IO_DIR/output.json"\n'
        for i in range(20)
    )
    (project / "flow.dig").write_text(
        header(project / "shared", PROCESS)
        + "+setup:\n  sh>: |\n    echo '{\"store_params\": {\"label\": \"the batch\"}}' > \"$OFFLOAD_IO_DIR/output.json\"\n"
        + "+fan:\n  _parallel: true\n"
        + tasks
        + '+sum:\n  sh>: echo "sum ${n0} ${n7} ${n19}"\n'
    )
    done = run(project)
    assert done.returncode == 0, done.stdout + done.stderr
    for i in range(20):
        assert f"[+flow+fan+t{i}] task {i} of the batch" in done.stdout
    assert "[+flow+sum] sum 0 7 19" in done.stdout
    assert _eventually_no_pods(kube_cluster, kube_namespace)
