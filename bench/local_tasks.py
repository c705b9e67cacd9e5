"""What the local backend costs per task, one at a time and 2,000 at once.

    .venv/bin/python bench/local_tasks.py [--tasks 200] [--parallel 2000] [--repeat 3]

1. ``--tasks`` x ``--repeat`` trivial tasks one after another through the embedding API
   (submit, wait, collect) against ``subprocess.run`` of the same argv, in the same
   process, in rounds of ``--tasks`` of each; the median time of a task of each.
2. ``--parallel`` tasks at once (``sh>: sleep 1`` under ``_parallel: true``) with
   ``offload run``, against a plain Python driver that starts the same commands with
   ``subprocess.Popen`` and waits for them all. For each driver: wall time, its own CPU
   time and peak RSS (``getrusage(RUSAGE_SELF)`` when it exits: the tasks' CPU is not in
   it), and the most descriptors it held (``/proc/PID/fd``, sampled every 5 ms).

Targets (issue 13): per task at most 1.3x ``subprocess.run``, then 1.15x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import offload

ARGV = ["/bin/sh", "-c", "echo trivial"]
TARGETS = (1.3, 1.15)

#: Runs a driver (the code after it) and writes its own CPU time and peak RSS to $BENCH_REPORT.
REPORTING = """\
import atexit, json, os, resource, runpy, subprocess, sys
def _report():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["BENCH_REPORT"], "w") as f:
        json.dump({"cpu": ru.ru_utime + ru.ru_stime, "rss_kb": ru.ru_maxrss}, f)
atexit.register(_report)
"""
OFFLOAD_DRIVER = REPORTING + "sys.argv = ['offload', 'run', 'flow.dig']\nrunpy.run_module('offload.workflow.cli', run_name='__main__', alter_sys=True)\n"
PLAIN_DRIVER = REPORTING + (
    "n, cmd = int(sys.argv[1]), sys.argv[2]\n"
    "procs = [subprocess.Popen(['/bin/sh', '-c', cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True) for _ in range(n)]\n"
    "assert all(p.wait() == 0 for p in procs)\n"
)


def one_direct() -> float:
    start = time.perf_counter()
    subprocess.run(ARGV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def one_offload(executor: offload.Executor, project: str, name: str) -> float:
    start = time.perf_counter()
    request = offload.TaskRequest(task_id=name, argv=ARGV, project_dir=project, io_dir=f".offload/io/{name}")
    result = executor.wait(executor.submit(request, backend="local"))
    elapsed = time.perf_counter() - start
    assert result.ok, result
    return elapsed


def sequential(n: int, repeat: int) -> None:
    """Each task timed on its own, in rounds of ``n`` of each kind: the medians shrug off noise."""
    project = tempfile.mkdtemp(prefix="offload-bench-local-")
    direct: list[float] = []
    through: list[float] = []
    try:
        with offload.Executor({"command_executor": {"type": "local"}}) as executor:
            for i in range(10):  # warm up
                one_direct(), one_offload(executor, project, f"warm-{i}")
            cpu = [0.0, 0.0]  # this process's CPU time in each kind of task
            for r in range(repeat):
                start = time.process_time()
                direct.extend(one_direct() for _ in range(n))
                cpu[0] += time.process_time() - start
                start = time.process_time()
                through.extend(one_offload(executor, project, f"bench-{r}-{i}") for i in range(n))
                cpu[1] += time.process_time() - start
    finally:
        shutil.rmtree(project, ignore_errors=True)
    d, t = statistics.median(direct), statistics.median(through)
    dc, tc = (c / (n * repeat) for c in cpu)
    print(f"{n * repeat} trivial tasks one after another ({' '.join(ARGV)}), each timed, {repeat} rounds; medians:")
    print(f"  subprocess.run   {d * 1000:6.3f} ms/task   driver CPU {dc * 1000:6.3f} ms/task")
    print(f"  offload local    {t * 1000:6.3f} ms/task   driver CPU {tc * 1000:6.3f} ms/task  (submit, wait, collect)")
    print(f"  ratio: {t / d:.2f}  (targets <= {TARGETS[0]}, then <= {TARGETS[1]})")


def measured(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run a driver; its wall time, own CPU, peak RSS and the most descriptors it held."""
    report = cwd / "report.json"
    env = {**env, "BENCH_REPORT": str(report)}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fds = 0
    while proc.poll() is None:
        try:
            fds = max(fds, len(os.listdir(f"/proc/{proc.pid}/fd")))
        except OSError:
            pass
        time.sleep(0.005)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, f"{argv[:3]} exited with {proc.returncode}"
    data = json.loads(report.read_text())
    return {"wall": wall, "cpu": data["cpu"], "rss_mb": data["rss_kb"] / 1024, "fds": fds}


def parallel(n: int, command: str, repeat: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="offload-bench-parallel-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["OFFLOAD_DISABLE_PLUGINS"] = "docker,ecs,kubernetes,s3,gcs"
    flow = "+many:\n  _parallel: true\n" + "".join(f"  +t{i}:\n    sh>: {command}\n" for i in range(n))
    runs: dict[str, list[dict[str, float]]] = {"plain Popen driver": [], "offload run": []}
    try:
        for r in range(repeat):
            project = root / f"p{r}"
            project.mkdir()
            (project / "flow.dig").write_text(flow)
            runs["plain Popen driver"].append(measured([sys.executable, "-c", PLAIN_DRIVER, str(n), command], project, env))
            runs["offload run"].append(measured([sys.executable, "-c", OFFLOAD_DRIVER], project, env))
            shutil.rmtree(project, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{n} parallel tasks ({command}), median of {repeat}:")
    med = {name: {key: statistics.median(r[key] for r in values) for key in values[0]} for name, values in runs.items()}
    for name, m in med.items():
        print(f"  {name:20s} wall {m['wall']:6.2f} s  driver CPU {m['cpu']:6.2f} s  peak RSS {m['rss_mb']:6.1f} MB  open files {m['fds']:5.0f}")
    plain, ours = med["plain Popen driver"], med["offload run"]
    print(
        f"  offload/plain: wall x{ours['wall'] / plain['wall']:.2f}, driver CPU x{ours['cpu'] / plain['cpu']:.2f}, "
        f"CPU per task {ours['cpu'] / n * 1000:.2f} ms against {plain['cpu'] / n * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200, help="sequential tasks per round")
    parser.add_argument("--parallel", type=int, default=2000, help="tasks at once (0: skip)")
    parser.add_argument("--command", default="sleep 1", help="the command of each parallel task")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median counts")
    args = parser.parse_args()
    if args.tasks:
        sequential(args.tasks, args.repeat)
    if args.parallel:
        parallel(args.parallel, args.command, args.repeat)


if __name__ == "__main__":
    main()
