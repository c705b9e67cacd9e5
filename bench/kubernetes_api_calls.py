"""API calls and poll CPU of the Kubernetes backend, against a real kube-apiserver on 127.0.0.1.

    .venv/bin/python bench/kubernetes_api_calls.py [--tasks 200] [--simulated 1000] [--cycles 5] [--age 60]

It starts the tests' control plane (v1.20.2) and fake kubelet (``tests/kubernetes/k8s_harness``):

(a) ``--tasks`` running tasks (each prints a line a second, measured after ``--age`` seconds):
    API calls, driver CPU and bytes received per poll cycle, offload's poll (one LIST of Jobs, one of pods, one log read from the
    cursor per running pod) against Digdag's (per pod: GET the pod, then its whole log again);
    and how many lines offload handed out twice (must be 0).
(b) ``--simulated`` tasks whose pods never start (a node selector no node has): calls and CPU
    per cycle, offload against one GET per pod.
(c) Time from submission to the task's first log line: offload (submit, then poll) against
    the calls ``kubectl create -f job.yaml`` then ``kubectl logs -f job/NAME`` make (create the
    Job, wait for its pod to run, follow its log), median of 3.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "kubernetes"))

from k8s_harness.cluster import Cluster  # noqa: E402
from k8s_harness.kubelet import IMAGE  # noqa: E402
from k8s_offload import cluster_section  # noqa: E402

import offload  # noqa: E402
from offload.testing import make_request  # noqa: E402
from offload_kubernetes.client import Kube  # noqa: E402

RUNTIME = {"fake-kubelet.offload.test/runtime": "process"}
PROCESS = {"annotations": RUNTIME}


def namespace(cluster: Cluster, name: str) -> str:
    rest = cluster.control_plane.rest("admin")
    rest.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    rest.close()
    return name


def executor_for(cluster: Cluster, ns: str) -> tuple[offload.Executor, Kube]:
    executor = offload.Executor({"command_executor": {"type": "kubernetes", "kubernetes": cluster_section(cluster, ns, pending_timeout=3600)}})
    backend: Any = executor.backends.get("kubernetes")
    count_log_bytes(backend.kube)
    return executor, backend.kube


def submit(executor: offload.Executor, project: Path, n: int, script: str, kubernetes: dict[str, Any]) -> list[offload.Handle]:
    task = {"docker": {"image": IMAGE}, "kubernetes": kubernetes}
    return [executor.submit(make_request(project, script, task), backend="kubernetes") for _ in range(n)]


def wait_states(executor: offload.Executor, handles: list[offload.Handle], wanted: offload.TaskState, limit: float = 600) -> list[offload.Handle]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        statuses = executor.poll(handles)
        handles = [s.handle or h for s, h in zip(statuses, handles, strict=True)]
        if all(s.state is wanted for s in statuses):
            return handles
        time.sleep(1)
    raise SystemExit(f"the tasks did not all become {wanted.value} in {limit} s")


LOG_BYTES = [0]


def count_log_bytes(kube: Kube) -> None:
    """Count the bytes of this client's log reads (``LOG_BYTES``), apart from the rest."""
    real = kube.request

    def request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        answer = real(method, path, *args, **kwargs)
        if path.endswith("/log") and isinstance(answer, bytes):
            LOG_BYTES[0] += len(answer)
        return answer

    kube.request = request  # type: ignore[method-assign]


def measure(cycles: int, one: Callable[[], tuple[int, int]], kube: Kube) -> tuple[float, float, float, float]:
    """Median calls, CPU ms, kB of logs and kB in all received per cycle of ``one``."""
    calls, cpu, logs, size = [], [], [], []
    for _ in range(cycles):
        before, received, log_before, started = kube.calls, kube.bytes_read, LOG_BYTES[0], time.process_time()
        one()
        cpu.append((time.process_time() - started) * 1000)
        calls.append(kube.calls - before)
        logs.append((LOG_BYTES[0] - log_before) / 1024)
        size.append((kube.bytes_read - received) / 1024)
        time.sleep(1)
    return statistics.median(calls), statistics.median(cpu), statistics.median(logs), statistics.median(size)


def digdag_cycle(kube: Kube, ns: str, handles: list[offload.Handle], read_logs: bool) -> tuple[int, int]:
    """Digdag's poll: each pod on its own, its whole log again (KubernetesCommandExecutor)."""
    for handle in handles:
        uid = handle.state["job_uid"]
        pods = kube.request("GET", f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": f"controller-uid={uid}"})
        for pod in pods.get("items") or []:
            if read_logs:
                kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/log", raw=True)
    return 0, 0


def offload_cycle(executor: offload.Executor, handles: list[offload.Handle], seen: dict[str, list[str]]) -> Callable[[], tuple[int, int]]:
    def one() -> tuple[int, int]:
        statuses = executor.poll(handles)
        for i, status in enumerate(statuses):
            handles[i] = status.handle or handles[i]
            seen.setdefault(handles[i].task_id, []).extend(status.logs)
        return 0, 0

    return one


def first_line_offload(executor: offload.Executor, project: Path) -> float:
    started = time.monotonic()
    (handle,) = submit(executor, project, 1, "echo first; sleep 1", PROCESS)
    while True:
        (status,) = executor.poll([handle])
        handle = status.handle or handle
        if status.logs:
            took = time.monotonic() - started
            break
        time.sleep(0.02)
    while not status.state.finished:
        time.sleep(0.1)
        (status,) = executor.poll([handle])
        handle = status.handle or handle
    executor.collect(handle)
    return took


def first_line_kubectl(kube: Kube, ns: str, n: int) -> float:
    """What ``kubectl create -f job.yaml; kubectl logs -f job/NAME`` does, through the same client."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"kubectl-{n}"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": RUNTIME},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE, "command": ["/bin/sh", "-c", "echo first; sleep 1"]}]},
            },
        },
    }
    started = time.monotonic()
    created = kube.request("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", body=job)
    uid = created["metadata"]["uid"]
    while True:  # kubectl logs waits for the pod to run (polling it)
        pods = kube.request("GET", f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": f"controller-uid={uid}"}).get("items") or []
        statuses = (pods[0].get("status") or {}).get("containerStatuses") or [] if pods else []
        if statuses and ("running" in statuses[0]["state"] or "terminated" in statuses[0]["state"]):
            break
        time.sleep(0.02)
    while True:
        data = kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{pods[0]['metadata']['name']}/log", raw=True)
        if data:
            return time.monotonic() - started
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--simulated", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--age", type=float, default=60, help="seconds the tasks run (and log) before (a) is measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="offload-bench-k8s-") as tmp:
        cluster = Cluster(Path(tmp) / "cluster")
        cluster.start()
        try:
            run(cluster, Path(tmp), args)
        finally:
            cluster.stop()


def run(cluster: Cluster, tmp: Path, args: argparse.Namespace) -> None:
    project = tmp / "project"
    project.mkdir()
    print(f"control plane and fake kubelet up in {cluster.startup_seconds:.1f} s")

    ns = namespace(cluster, "bench-running")
    executor, kube = executor_for(cluster, ns)
    script = "i=0; while [ $i -lt 600 ]; do echo tick-$i; i=$((i+1)); sleep 1; done"
    handles = wait_states(executor, submit(executor, project, args.tasks, script, PROCESS), offload.TaskState.RUNNING)
    seen: dict[str, list[str]] = {}
    ages = time.monotonic() + args.age
    while time.monotonic() < ages:  # the driver polls on, as during a run, while the logs grow
        offload_cycle(executor, handles, seen)()
        time.sleep(1)
    ours = measure(args.cycles, offload_cycle(executor, handles, seen), kube)
    theirs = measure(args.cycles, lambda: digdag_cycle(kube, ns, handles, True), kube)
    repeated = sum(len(lines) - len(set(lines)) for lines in seen.values())
    print(f"\n(a) {args.tasks} running tasks, per poll cycle (median of {args.cycles})")
    row = "{:6.0f} API calls  {:8.1f} ms CPU  {:8.1f} kB of logs  {:8.1f} kB received in all"
    print("    offload : " + row.format(*ours) + f"  lines handed out twice: {repeated}")
    print("    digdag  : " + row.format(*theirs))
    ratios = [t / max(o, 0.001) for o, t in zip(ours, theirs, strict=True)]
    print("    ratio   : {:6.1f}x calls  {:6.1f}x CPU  {:6.1f}x log bytes  {:6.1f}x bytes".format(*ratios))
    for handle in handles:
        executor.cancel(handle, grace=0)
    executor.close()

    ns = namespace(cluster, "bench-pending")
    executor, kube = executor_for(cluster, ns)
    pending = submit(executor, project, args.simulated, "true", {"node_selector": {"pool": "none"}})
    time.sleep(5)
    ours = measure(args.cycles, offload_cycle(executor, pending, {}), kube)
    theirs = measure(args.cycles, lambda: digdag_cycle(kube, ns, pending, False), kube)
    print(f"\n(b) {args.simulated} tasks whose pods never start, per poll cycle")
    print(f"    offload : {ours[0]:6.0f} API calls  {ours[1]:8.1f} ms CPU")
    print(f"    per pod : {theirs[0]:6.0f} API calls  {theirs[1]:8.1f} ms CPU")
    print(f"    ratio   : {theirs[0] / max(ours[0], 1):6.1f}x calls  {theirs[1] / max(ours[1], 0.001):6.1f}x CPU")
    for handle in pending:
        executor.cancel(handle, grace=0)
    executor.close()

    ns = namespace(cluster, "bench-first-line")
    executor, kube = executor_for(cluster, ns)
    ours_t = statistics.median(first_line_offload(executor, project) for _ in range(3))
    theirs_t = statistics.median(first_line_kubectl(kube, ns, i) for i in range(3))
    print("\n(c) submission to the task's first log line (median of 3)")
    print(f"    offload : {ours_t:6.2f} s    kubectl create + logs -f : {theirs_t:6.2f} s    ratio {ours_t / theirs_t:5.2f}x")
    executor.close()


if __name__ == "__main__":
    main()
