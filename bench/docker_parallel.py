"""Many Docker tasks at once through offload, against as many ``docker run`` CLIs at once.

    bash scripts/setup_docker.sh && .venv/bin/python bench/docker_parallel.py [--tasks 50] [--seconds 2] [--repeat 3]

Three cases, interleaved in each round so that machine drift hits all alike:

1. ``cli``: ``--tasks`` processes ``docker run --rm IMAGE sh -c 'echo tN; sleep S'``
   started at once, waited for together (the baseline);
2. ``executor``: the same commands submitted at once through ``offload.Executor`` and
   polled together as the workflow runner does (poll all, collect the finished ones,
   ``wait_any``), in this process;
3. ``workflow``: ``offload run`` of a workflow with one ``_parallel: true`` group of
   ``--tasks`` ``sh>`` tasks with ``docker: {image: ...}``, in a fresh project each time;
4. ``engine``: what the engine alone needs: the same containers created and started
   through the SDK from 8 threads, then waited for (no logs read): a floor, not a rival.

Printed: wall (median), the driver's own CPU (the CLI case: the CPU of the ``docker``
processes), the ratio of each offload case's wall to the CLI's, and the load average
(before the rounds, and during them: the bench's own containers raise it). Every case but
``engine`` checks that each task's line came exactly once. Target (issue 13): 50 parallel
2-second tasks in under 5 s wall; the per-task overhead at most the CLI's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rounds

import offload
from offload import Handle
from offload.executor.polling import AdaptiveInterval
from offload.testing import make_request

IMAGE = os.environ.get("OFFLOAD_TEST_IMAGE", "offload-test-base:bookworm")
TARGET_WALL = 5.0


Sample = tuple[float, float]  # wall, CPU


def script(i: int, seconds: float) -> str:
    return f"echo t{i}; sleep {seconds:g}"


def cpu_of(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def exactly_once(lines: list[str], n: int, where: str) -> None:
    counts = Counter(line.strip() for line in lines)
    wrong = [f"t{i}: {counts[f't{i}']}" for i in range(n) if counts[f"t{i}"] != 1]
    if wrong:
        raise SystemExit(f"{where}: task lines not seen exactly once: {', '.join(wrong[:5])}")


def cli(n: int, seconds: float) -> Sample:
    """``n`` ``docker run --rm`` started at once; their CPU is the baseline's driver CPU."""
    before = cpu_of(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [subprocess.Popen(["docker", "run", "--rm", IMAGE, "sh", "-c", script(i, seconds)], stdout=subprocess.PIPE, text=True) for i in range(n)]
    lines = [line for proc in procs for line in proc.communicate()[0].splitlines()]
    wall = time.perf_counter() - start
    if any(proc.returncode for proc in procs):
        raise SystemExit(f"docker run failed: {[proc.returncode for proc in procs]}")
    exactly_once(lines, n, "cli")
    return wall, cpu_of(resource.RUSAGE_CHILDREN) - before


def executor(root: Path, n: int, seconds: float, submitted: list[float]) -> Sample:
    """``n`` tasks submitted at once, polled together as the workflow runner does."""
    project = Path(tempfile.mkdtemp(dir=root))
    requests = [make_request(project, script(i, seconds), {"docker": {"image": IMAGE}}) for i in range(n)]
    before = cpu_of(resource.RUSAGE_SELF)
    start = time.perf_counter()
    lines: list[str] = []
    with offload.Executor({"command_executor": {"type": "docker"}}) as ex:
        running: list[Handle] = [ex.submit(request, backend="docker") for request in requests]
        submitted.append(time.perf_counter() - start)
        interval = AdaptiveInterval()
        while running:
            still: list[Handle] = []
            for handle, status in zip(running, ex.poll(running), strict=True):
                handle = status.handle or handle
                lines += status.logs
                if status.state.finished:
                    result = ex.collect(handle)
                    if not result.ok:
                        raise SystemExit(f"executor: {result}")
                    interval.changed()
                else:
                    still.append(handle)
                if status.logs:
                    interval.changed()
            running = still
            ex.wait_any(running, interval.next())
        wall = time.perf_counter() - start
    exactly_once(lines, n, "executor")
    return wall, cpu_of(resource.RUSAGE_SELF) - before


def engine_alone(n: int, seconds: float) -> Sample:
    """Create and start ``n`` containers from 8 threads with the SDK, wait for them, remove them."""
    import docker

    api = docker.APIClient(max_pool_size=n + 8)
    before = cpu_of(resource.RUSAGE_SELF)
    start = time.perf_counter()

    def run(i: int) -> str:
        container_id = str(api.create_container(IMAGE, ["sh", "-c", script(i, seconds)], labels={"offload-bench": "engine"})["Id"])
        api.start(container_id)
        return container_id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(run, range(n)))
    codes = [api.wait(container_id)["StatusCode"] for container_id in ids]
    wall = time.perf_counter() - start
    cpu = cpu_of(resource.RUSAGE_SELF) - before
    for container_id in ids:
        api.remove_container(container_id, force=True)
    api.close()
    if any(codes):
        raise SystemExit(f"engine: exit codes {codes}")
    return wall, cpu


def flow(n: int, seconds: float) -> str:
    tasks = "".join(f"  +t{i}:\n    sh>: {script(i, seconds)}\n" for i in range(n))
    return f"_export:\n  docker:\n    image: {IMAGE}\n+par:\n  _parallel: true\n{tasks}"


def workflow(root: Path, n: int, seconds: float) -> Sample:
    """``offload run`` of a ``_parallel`` group, in a fresh project; the driver reports its CPU."""
    project = Path(tempfile.mkdtemp(dir=root))
    (project / "flow.dig").write_text(flow(n, seconds))
    report = project / "cpu.txt"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}, "BENCH_CPU": str(report)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", rounds.DRIVER], cwd=project, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"offload run failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    exactly_once([line.rsplit(" ", 1)[-1] for line in done.stdout.splitlines()], n, "workflow")
    return wall, float(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds after a warm-up; the median counts")
    parser.add_argument("--cases", default="cli,executor,workflow,engine", help="comma-separated subset")
    args = parser.parse_args()
    n, seconds = args.tasks, args.seconds
    submitted: list[float] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="offload-bench-docker-") as tmp:
        root = Path(tmp)
        all_cases: dict[str, Callable[[], Sample]] = {
            "cli": lambda: cli(n, seconds),
            "executor": lambda: executor(root, n, seconds, submitted),
            "workflow": lambda: workflow(root, n, seconds),
            "engine": lambda: engine_alone(n, seconds),
        }
        cases = {name: all_cases[name] for name in args.cases.split(",")}
        for case in cases.values():  # warm-up: page cache, .pyc files, the engine's image layers
            case()
        submitted.clear()
        samples: dict[str, list[Sample]] = {name: [] for name in cases}
        loads = []
        for _ in range(args.repeat):
            for name, case in cases.items():
                samples[name].append(case())
                loads.append(os.getloadavg()[0])
    wall = {name: statistics.median(s[0] for s in values) for name, values in samples.items()}
    cpu = {name: statistics.median(s[1] for s in values) for name, values in samples.items()}
    print(f"{n} parallel tasks `echo tN; sleep {seconds:g}` on {IMAGE}; median of {args.repeat} rounds")
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; 1 min during the rounds: {min(loads):.2f}-{max(loads):.2f}")
    labels = {
        "cli": "docker run --rm x N at once (CLI)",
        "executor": "offload Executor, submitted at once",
        "workflow": "offload run, _parallel group",
        "engine": "engine alone (SDK, 8 threads; floor)",
    }
    for name in cases:
        who = {"cli": "docker CLIs' CPU", "engine": "SDK's CPU"}.get(name, "driver CPU")
        print(f"  {labels[name]:38s} wall {wall[name]:6.2f} s  {who} {cpu[name]:6.2f} s")
    if submitted:
        print(f"  (executor: all {n} submitted after {statistics.median(submitted) * 1000:.0f} ms)")
    for name in ("executor", "workflow"):
        if name in cases and "cli" in cases:
            over, base = wall[name] - seconds, wall["cli"] - seconds
            print(f"  ratio {name}/cli wall: {wall[name] / wall['cli']:.2f}; overhead beyond the sleep {over:.2f} s vs {base:.2f} s")
        if name in cases:
            met = "met" if wall[name] < TARGET_WALL else "NOT met"
            print(f"  target {name} wall < {TARGET_WALL:g} s: {met}")
    if "engine" in cases and "cli" in cases:
        print(f"  the engine alone: {wall['engine']:.2f} s ({wall['engine'] / wall['cli']:.2f} of the CLI's wall)")


if __name__ == "__main__":
    main()
