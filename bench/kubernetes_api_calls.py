"""API calls, driver CPU and log latency of the Kubernetes backend, against a real kube-apiserver on 127.0.0.1.

    .venv/bin/python bench/kubernetes_api_calls.py [--tasks 200] [--simulated 1000] [--pending 1000] [--cycles 8] [--baseline-cycles 3] [--age 60]

It starts the tests' control plane (v1.20.2) and fake kubelet (``tests/kubernetes/k8s_harness``):

(a) ``--tasks`` running tasks, real processes, each printing a line a second, measured after
    ``--age`` seconds, then (b) ``--simulated`` running tasks of the kubelet's test-only
    simulated runtime (no process: the kubelet writes a line a second for each). For each,
    per poll cycle (a poll, then 1 s): API calls split by verb and resource, driver CPU,
    the poll's wall time, kB of logs and kB received in all, and the worst latency from a
    line written (each line carries its time) to the driver handing it out, over all cycles;
    offload's poll (one LIST of pods, the log reads :mod:`offload_kubernetes.schedule` picks)
    against Digdag's (per pod: GET the pod by name, then its whole log again), and how many lines
    offload handed out twice (must be 0).
(c) ``--pending`` tasks whose pods never start (a node selector no node has): calls and CPU
    per cycle, offload against one GET per pod.
(d) Time from submission to the task's first log line: offload (submit, then poll) against
    the calls ``kubectl create -f job.yaml`` then ``kubectl logs -f job/NAME`` make (create the
    Job, wait for its pod to run, follow its log), median of 3.
Each result is printed with the load average. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "kubernetes"))

from k8s_harness import RUNTIME as RUNTIME_KEY  # noqa: E402
from k8s_harness import SIMULATED_EVERY, SIMULATED_LINES  # noqa: E402
from k8s_harness.cluster import Cluster  # noqa: E402
from k8s_harness.kubelet import IMAGE  # noqa: E402
from k8s_offload import cluster_section  # noqa: E402

import offload  # noqa: E402
from offload.testing import make_request  # noqa: E402
from offload_kubernetes.client import Kube, KubeError  # noqa: E402

RUNTIME = {RUNTIME_KEY: "process"}
PROCESS = {"annotations": RUNTIME}
SIMULATED = {"annotations": {RUNTIME_KEY: "simulated", SIMULATED_LINES: "1200", SIMULATED_EVERY: "1"}}
#: A line a second, each with the time it was written (as the simulated runtime writes them).
TICKS = 'i=0; while [ $i -lt 1200 ]; do echo "tick-$i $(date +%s%N)"; i=$((i+1)); sleep 1; done'
TICK = re.compile(r"tick-\d+ (\d+)$")


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def namespace(cluster: Cluster, name: str) -> str:
    rest = cluster.control_plane.rest("admin")
    rest.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    rest.close()
    return name


def drop_namespace(cluster: Cluster, name: str, limit: float = 900) -> None:
    """Delete the namespace and wait until it is gone, so its clean-up does not weigh on what follows."""
    rest = cluster.control_plane.rest("admin")
    try:
        rest.delete(f"/api/v1/namespaces/{name}", {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"})
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                rest.get(f"/api/v1/namespaces/{name}")
            except Exception:  # noqa: BLE001 - 404: gone
                return
            time.sleep(2)
    finally:
        rest.close()


RESOURCES = {"pods", "jobs", "configmaps", "persistentvolumeclaims", "persistentvolumes"}


class Counted:
    """The calls of one client by verb and resource (``list pods``, ``get pods/log``...), and the bytes of log reads."""

    def __init__(self, kube: Kube) -> None:
        self.kube, self.calls, self.log_bytes = kube, Counter[str](), 0
        self._lock = threading.Lock()
        real = kube.request

        def request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            parts = path.strip("/").split("/")
            kind = "pods/log" if parts[-1] == "log" else parts[-1] if parts[-1] in RESOURCES else parts[-2]
            verb = "list" if method == "GET" and parts[-1] in RESOURCES else method.lower()
            answer = real(method, path, *args, **kwargs)
            with self._lock:
                self.calls[f"{verb} {kind}"] += 1
                if parts[-1] == "log" and isinstance(answer, bytes):
                    self.log_bytes += len(answer)
            return answer

        kube.request = request  # type: ignore[method-assign]


def executor_for(cluster: Cluster, ns: str) -> tuple[offload.Executor, Counted]:
    executor = offload.Executor({"command_executor": {"type": "kubernetes", "kubernetes": cluster_section(cluster, ns, pending_timeout=3600)}})
    backend: Any = executor.backends.get("kubernetes")
    return executor, Counted(backend.kube)


def submit(executor: offload.Executor, project: Path, n: int, script: str, kubernetes: dict[str, Any]) -> list[offload.Handle]:
    task = {"docker": {"image": IMAGE}, "kubernetes": kubernetes}
    return [executor.submit(make_request(project, script, task), backend="kubernetes") for _ in range(n)]


def wait_states(executor: offload.Executor, handles: list[offload.Handle], wanted: offload.TaskState, limit: float = 900) -> list[offload.Handle]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        statuses = executor.poll(handles)
        handles = [s.handle or h for s, h in zip(statuses, handles, strict=True)]
        if all(s.state is wanted for s in statuses):
            return handles
        time.sleep(1)
    raise SystemExit(f"the tasks did not all become {wanted.value} in {limit} s")


class Cycles:
    """Per cycle: calls by verb and resource, CPU ms, wall ms, kB of logs, kB in all; the worst line latency."""

    def __init__(self) -> None:
        self.calls: list[Counter[str]] = []
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.logs: list[float] = []
        self.size: list[float] = []
        self.latency = 0.0

    def saw(self, lines: Sequence[str], now_ns: int) -> None:
        for line in lines:
            m = TICK.search(line)
            if m:
                self.latency = max(self.latency, (now_ns - int(m.group(1))) / 1e9)

    def total(self, i: int) -> int:
        return sum(self.calls[i].values())

    def median_calls(self) -> float:
        return statistics.median(self.total(i) for i in range(len(self.calls)))

    def split(self) -> str:
        kinds = sorted({k for c in self.calls for k in c})
        return ", ".join(f"{k} {statistics.median(c[k] for c in self.calls):.0f}" for k in kinds)

    def row(self) -> str:
        most = max(self.total(i) for i in range(len(self.calls)))
        return (f"{self.median_calls():6.0f} calls (max {most}; {self.split()})  {statistics.median(self.cpu):7.1f} ms CPU  "
                f"{statistics.median(self.wall):7.0f} ms wall  {statistics.median(self.logs):7.1f} kB logs  "
                f"{statistics.median(self.size):7.1f} kB in all  worst line latency {self.latency:5.1f} s")


def measure(cycles: int, one: Callable[[Cycles], None], counted: Counted) -> Cycles:
    out = Cycles()
    for _ in range(cycles):
        before, received, log_before = Counter(counted.calls), counted.kube.bytes_read, counted.log_bytes
        started, wall = time.process_time(), time.monotonic()
        one(out)
        out.cpu.append((time.process_time() - started) * 1000)
        out.wall.append((time.monotonic() - wall) * 1000)
        out.calls.append(counted.calls - before)
        out.logs.append((counted.log_bytes - log_before) / 1024)
        out.size.append((counted.kube.bytes_read - received) / 1024)
        time.sleep(1)
    return out


def digdag_cycle(kube: Kube, ns: str, handles: list[offload.Handle], read_logs: bool, seen: dict[str, int]) -> Callable[[Cycles], None]:
    """Digdag's poll: each pod on its own (GET by name; by its Job's label until offload saw its name), its whole log again."""

    def one(out: Cycles) -> None:
        for handle in handles:
            uid, name = handle.state["job_uid"], handle.state.get("pod")
            if name:
                pods = {"items": [kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")]}
            else:
                pods = kube.request("GET", f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": f"controller-uid={uid}"})
            for pod in pods.get("items") or []:
                if not read_logs:
                    continue
                try:
                    data = kube.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/log", raw=True)
                except KubeError:
                    continue  # the baseline goes on with the other pods
                lines = [line for line in data.decode(errors="replace").split("\n") if TICK.search(line)]
                out.saw(lines[seen.get(uid, 0):], time.time_ns())
                seen[uid] = len(lines)

    return one


def offload_cycle(executor: offload.Executor, handles: list[offload.Handle], seen: dict[str, list[str]]) -> Callable[[Cycles], None]:
    def one(out: Cycles) -> None:
        statuses = executor.poll(handles)
        now = time.time_ns()
        for i, status in enumerate(statuses):
            handles[i] = status.handle or handles[i]
            seen.setdefault(handles[i].task_id, []).extend(status.logs)
            out.saw(status.logs, now)

    return one


def running_tasks(cluster: Cluster, project: Path, args: argparse.Namespace, label: str, n: int, script: str, kubernetes: dict[str, Any]) -> None:
    """(a) and (b): ``n`` running tasks logging a line a second, offload's poll against Digdag's."""
    ns = namespace(cluster, f"bench-{label}")
    executor, counted = executor_for(cluster, ns)
    handles = wait_states(executor, submit(executor, project, n, script, kubernetes), offload.TaskState.RUNNING)
    seen: dict[str, list[str]] = {}
    warm = Cycles()
    ages = time.monotonic() + args.age
    while time.monotonic() < ages:  # the driver polls on, as during a run, while the logs grow
        offload_cycle(executor, handles, seen)(warm)
        time.sleep(1)
    ours = measure(args.cycles, offload_cycle(executor, handles, seen), counted)
    ours_load = load()
    digdag_seen: dict[str, int] = {}
    kube = counted.kube
    digdag_cycle(kube, ns, handles, True, digdag_seen)(Cycles())  # where each log stands: what comes later is new
    theirs = measure(args.baseline_cycles, digdag_cycle(kube, ns, handles, True, digdag_seen), counted)
    repeated = sum(len(lines) - len(set(lines)) for lines in seen.values())
    print(f"\n({label}) {n} running tasks logging a line a second, per poll cycle (a poll, then 1 s; "
          f"median of {args.cycles}, Digdag's of {args.baseline_cycles})")
    print(f"    offload : {ours.row()}  lines handed out twice: {repeated}  [{ours_load}]")
    print(f"    digdag  : {theirs.row()}  [{load()}]")
    print(f"    ratio   : {theirs.median_calls() / max(ours.median_calls(), 1):5.1f}x fewer calls  "
          f"{statistics.median(theirs.cpu) / max(statistics.median(ours.cpu), 0.001):5.1f}x less CPU  "
          f"{statistics.median(theirs.logs) / max(statistics.median(ours.logs), 0.001):5.1f}x fewer log bytes  "
          f"latency {ours.latency / max(theirs.latency, 0.001):5.2f}x Digdag's")
    executor.close()
    drop_namespace(cluster, ns)


def pending_tasks(cluster: Cluster, project: Path, args: argparse.Namespace) -> None:
    ns = namespace(cluster, "bench-pending")
    executor, counted = executor_for(cluster, ns)
    pending = submit(executor, project, args.pending, "true", {"node_selector": {"pool": "none"}})
    time.sleep(5)
    ours = measure(args.cycles, offload_cycle(executor, pending, {}), counted)
    theirs = measure(args.baseline_cycles, digdag_cycle(counted.kube, ns, pending, False, {}), counted)
    print(f"\n(c) {args.pending} tasks whose pods never start, per poll cycle  [{load()}]")
    print(f"    offload : {ours.median_calls():6.0f} API calls ({ours.split()})  {statistics.median(ours.cpu):8.1f} ms CPU")
    print(f"    per pod : {theirs.median_calls():6.0f} API calls ({theirs.split()})  {statistics.median(theirs.cpu):8.1f} ms CPU")
    print(f"    ratio   : {theirs.median_calls() / max(ours.median_calls(), 1):6.1f}x calls  "
          f"{statistics.median(theirs.cpu) / max(statistics.median(ours.cpu), 0.001):6.1f}x CPU")
    executor.close()
    drop_namespace(cluster, ns)
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
    parser.add_argument("--tasks", type=int, default=200, help="running tasks, real processes (0: skip)")
    parser.add_argument("--simulated", type=int, default=1000, help="running tasks of the simulated runtime (0: skip)")
    parser.add_argument("--pending", type=int, default=1000, help="tasks whose pods never start (0: skip)")
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--baseline-cycles", type=int, default=3, help="Digdag's cycles (one takes ~100 s at 1,000 pods)")
    parser.add_argument("--age", type=float, default=60, help="seconds the tasks run (and log) before they are measured")
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
    print(f"control plane and fake kubelet up in {cluster.startup_seconds:.1f} s  [{load()}]", flush=True)
    if args.tasks:
        running_tasks(cluster, project, args, "a", args.tasks, TICKS, PROCESS)
    if args.simulated:
        running_tasks(cluster, project, args, "b", args.simulated, "true", SIMULATED)
    if args.pending:
        pending_tasks(cluster, project, args)

    ns = namespace(cluster, "bench-first-line")
    executor, counted = executor_for(cluster, ns)
    ours_t = statistics.median(first_line_offload(executor, project) for _ in range(3))
    theirs_t = statistics.median(first_line_kubectl(counted.kube, ns, i) for i in range(3))
    print(f"\n(d) submission to the task's first log line (median of 3)  [{load()}]")
    print(f"    offload : {ours_t:6.2f} s    kubectl create + logs -f : {theirs_t:6.2f} s    ratio {ours_t / theirs_t:5.2f}x")
    executor.close()


if __name__ == "__main__":
    main()
