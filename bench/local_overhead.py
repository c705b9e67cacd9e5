"""Overhead of offload's local backend against running the same command directly.

    python bench/local_overhead.py [--tasks 200]

(1) N trivial tasks, one after another, through offload's embedding API (submit, wait
for the result, collect) against ``subprocess.run`` of the same argv, in the same
process; (2) ``offload --version`` against ``python -c pass``. Prints the ratios.
Targets: per-task ratio at most 1.15; CLI start at most 0.25 s above bare Python.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import offload

ARGV = ["/bin/sh", "-c", "echo trivial"]


def run_direct(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(ARGV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def run_offload(n: int, project: str) -> float:
    with offload.Executor({"command_executor": {"type": "local"}}) as executor:
        start = time.perf_counter()
        for i in range(n):
            io_dir = f".offload/io/bench-{i}"
            os.makedirs(os.path.join(project, io_dir), exist_ok=True)
            request = offload.TaskRequest(task_id=f"bench-{i}", argv=ARGV, project_dir=project, io_dir=io_dir)
            result = executor.wait(executor.submit(request, backend="local"))
            assert result.ok, result
        return time.perf_counter() - start


def time_command(argv: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each; the best round counts")
    args = parser.parse_args()
    project = tempfile.mkdtemp(prefix="offload-bench-")
    run_direct(10), run_offload(10, project)  # warm up caches
    direct = min(run_direct(args.tasks) for _ in range(args.repeat))
    through = min(run_offload(args.tasks, project) for _ in range(args.repeat))
    print(f"{args.tasks} trivial tasks ({' '.join(ARGV)}), best of {args.repeat}:")
    print(f"  subprocess.run      {direct:7.3f} s  ({direct / args.tasks * 1000:6.2f} ms/task)")
    print(f"  offload local       {through:7.3f} s  ({through / args.tasks * 1000:6.2f} ms/task)")
    print(f"  ratio offload/subprocess.run: {through / direct:.2f}  (target <= 1.15)")
    bare = time_command([sys.executable, "-c", "pass"], 15)
    cli = time_command([sys.executable, "-m", "offload.workflow.cli", "--version"], 15)
    print("CLI start, median of 15:")
    print(f"  python -c pass      {bare * 1000:7.1f} ms")
    print(f"  offload --version   {cli * 1000:7.1f} ms")
    print(f"  difference: {(cli - bare) * 1000:.1f} ms  (target < 250 ms)")


if __name__ == "__main__":
    main()
