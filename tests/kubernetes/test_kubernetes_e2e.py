"""End to end, as a user runs it: ``offload run`` of examples/kubernetes through the CLI,
each task a Job on the real API server, its pod run by the fake kubelet in a container.
``offload explain`` says why Kubernetes is or is not chosen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from k8s_harness.cluster import Cluster
from k8s_harness.kubelet import IMAGE
from k8s_offload import cluster_section

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kubernetes"


def offload(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offload.workflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def example(tmp_path: Path) -> Path:
    project = tmp_path / "kubernetes"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".offload", "__pycache__", "offload.yml"))
    return project


def test_the_example_runs_as_jobs_and_leaves_nothing_in_the_cluster(kube_cluster: Cluster, kube_namespace: str, tmp_path: Path) -> None:
    project = example(tmp_path)
    config = project / "offload.yml"
    config.write_text(yaml.safe_dump({"command_executor": {"type": "kubernetes", "kubernetes": cluster_section(kube_cluster, kube_namespace)}}))
    explain = offload("explain", "flow.dig", "-c", str(config), cwd=project)
    assert explain.returncode == 0, explain.stdout + explain.stderr
    assert "+flow+hello: runs on kubernetes" in explain.stdout, explain.stdout

    run = offload("run", "flow.dig", "-c", str(config), cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[+flow+hello] hello from pod " in run.stdout, run.stdout
    assert "[+flow+regions+north] north of Lisbon, warmest 24 C" in run.stdout
    assert "[+flow+report] Lisbon, 3 days, warmest 24 C" in run.stdout
    for task in ("+flow+hello", "+flow+forecast", "+flow+regions+north", "+flow+regions+south", "+flow+report"):
        assert any(line.startswith(task) and " kubernetes " in line and "succeeded" in line for line in run.stdout.splitlines()), run.stdout
    assert kube_cluster.token("offload") not in run.stdout + run.stderr

    apis = kube_cluster.apis("admin")
    try:
        jobs = apis.batch.list_namespaced_job(kube_namespace, label_selector="app.kubernetes.io/managed-by=offload").items
        live = [j.metadata.name for j in jobs if j.metadata.deletion_timestamp is None]
        assert live == []  # every Job was deleted once collected
    finally:
        apis.client.close()


def test_without_the_kubernetes_section_explain_says_why_and_docker_images_stay_unused(tmp_path: Path) -> None:
    project = example(tmp_path)
    config = project / "offload.yml"
    config.write_text(yaml.safe_dump({"command_executor": {"order": ["kubernetes", "local"], "kubernetes": {}}}))
    explain = offload("explain", "flow.dig", "-c", str(config), cwd=project)
    assert explain.returncode == 0, explain.stderr
    assert "+flow+hello: runs on local" in explain.stdout, explain.stdout
    assert "kubernetes" in explain.stdout and "not configured" in explain.stdout
    assert IMAGE  # the example names its own image; the fake kubelet stands the test image in for it


def test_explain_says_when_a_kubernetes_section_is_not_used_because_type_and_order_leave_it_out(
    kube_cluster: Cluster, kube_namespace: str, tmp_path: Path
) -> None:
    project = example(tmp_path)
    config = project / "offload.yml"
    config.write_text(yaml.safe_dump({"command_executor": {"order": ["local"], "kubernetes": cluster_section(kube_cluster, kube_namespace)}}))
    explain = offload("explain", "flow.dig", "-c", str(config), cwd=project)
    assert explain.returncode == 0, explain.stderr
    assert "note: command_executor.kubernetes is configured but not used: set command_executor.type: kubernetes" in explain.stdout
    assert "+flow+hello: runs on local" in explain.stdout


def test_a_new_user_runs_the_example_on_the_local_control_plane_with_the_readmes_commands(kube_cluster: Cluster, tmp_path: Path) -> None:
    """plugins/kubernetes/README.md: ``kubernetes_local.sh up > offload.yml``, ``offload run``, ``down``."""
    root = EXAMPLE.parents[1]
    env = {**os.environ, "OFFLOAD_KUBE_STATE": str(tmp_path / "state"), "OFFLOAD_VENV": str(Path(sys.executable).parents[1])}
    script = ["bash", str(root / "scripts" / "kubernetes_local.sh")]
    up = subprocess.run([*script, "up"], capture_output=True, text=True, timeout=300, env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        project = example(tmp_path)
        (project / "offload.yml").write_text(up.stdout)
        run = offload("run", "flow.dig", "-c", "offload.yml", cwd=project)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "[+flow+report] Lisbon, 3 days, warmest 24 C" in run.stdout
    finally:
        down = subprocess.run([*script, "down"], capture_output=True, text=True, timeout=120, env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    status = subprocess.run([*script, "status"], capture_output=True, text=True, timeout=60, env=env)
    assert "running" not in status.stdout.replace("NOT RUNNING", "").replace("not running", ""), status.stdout
