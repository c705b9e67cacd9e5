"""What a task after the first costs in a chain, against running its command directly.

    .venv/bin/python bench/handover.py [--repeat 3] [--echo 50] [--py 20]

Two chains, each run with ``offload run`` (local backend, a fresh project every time):

1. ``--echo`` sequential ``sh>: echo N`` tasks, against a ``subprocess.run`` loop of
   ``/bin/sh -c 'echo N'``;
2. ``--py`` sequential ``py>`` steps, each reading the value the one before stored and
   storing it plus one, against ``python3 -c`` of the same interpreter per step (bare
   ``-c pass``, and ``-c`` passing the value on through a JSON file).

A chain's cost per task is ``(wall of the N-task chain - wall of a 1-task chain) / (N - 1)``:
what each task after the first adds, start-up excluded. Medians of ``--repeat`` rounds,
the cases of a round interleaved so that machine drift hits all alike. The driver's own CPU
time per task (``getrusage`` when it exits, the tasks' excluded) is printed too. The interpreter of
the baseline is the one ``python3`` on ``PATH`` runs (a pyenv shim is asked which).
Targets (issue 13): an ``echo`` task at most 3x ``subprocess.run``; a ``py>`` step at most
1.5x a bare ``python3 -c``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import rounds

ECHO_TARGET = 3.0
PY_TARGET = 1.5
STEP_CODE = "import offload_env\n\n\ndef step(n):\n    offload_env.store(n=int(n) + 1)\n"
PASS_VALUE = "import json\nwith open('v.json') as f: n = json.load(f)['n']\nwith open('v.json', 'w') as f: json.dump({'n': n + 1}, f)\n"


def bench_env(pycache: Path) -> dict[str, str]:
    """The caller's environment without OFFLOAD_* (no config); bytecode cached as installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["OFFLOAD_DISABLE_PLUGINS"] = "docker,ecs,kubernetes,s3,gcs"
    return env


def echo_flow(n: int) -> str:
    return "".join(f"+t{i}:\n  sh>: echo {i}\n" for i in range(n))


def py_flow(n: int) -> str:
    return "_export:\n  n: 0\n" + "".join(f"+s{i}:\n  py>: steps.step\n" for i in range(n))


def offload_run(root: Path, env: dict[str, str], flow: str, steps: bool, cpu: list[float]) -> Callable[[], float]:
    """Wall of one ``offload run`` in a fresh project; the driver's own CPU time goes to ``cpu``."""

    def once() -> float:
        project = Path(tempfile.mkdtemp(dir=root))
        (project / "flow.dig").write_text(flow)
        if steps:
            (project / "steps.py").write_text(STEP_CODE)
        report = project / "cpu.txt"
        start = time.perf_counter()
        argv = [sys.executable, "-c", rounds.DRIVER]
        subprocess.run(argv, cwd=project, env={**env, "BENCH_CPU": str(report)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - start
        cpu.append(float(report.read_text()))
        return wall

    return once


def loop(argvs: list[list[str]], cwd: Path, env: dict[str, str]) -> Callable[[], float]:
    """Wall of running each argv once, one after another; the time per command."""

    def once() -> float:
        (cwd / "v.json").write_text('{"n": 0}')
        start = time.perf_counter()
        for argv in argvs:
            subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
        return (time.perf_counter() - start) / len(argvs)

    return once


def resolved_python3(env: dict[str, str]) -> str:
    """The interpreter that ``python3`` on PATH runs (through a version manager's shim too)."""
    out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median counts")
    parser.add_argument("--echo", type=int, default=50, help="tasks of the echo chain")
    parser.add_argument("--py", type=int, default=20, help="steps of the py> chain")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="offload-bench-handover-"))
    env = bench_env(root / "pycache")
    cpu: dict[str, list[float]] = {"echo 1": [], "echo N": [], "py 1": [], "py N": []}
    python = resolved_python3(env)
    scratch = root / "scratch"
    scratch.mkdir()
    cases: dict[str, Callable[[], float]] = {}
    if args.echo > 1:
        cases["echo 1"] = offload_run(root, env, echo_flow(1), False, cpu["echo 1"])
        cases["echo N"] = offload_run(root, env, echo_flow(args.echo), False, cpu["echo N"])
        cases["subprocess.run"] = loop([["/bin/sh", "-c", f"echo {i}"] for i in range(args.echo)], scratch, env)
    if args.py > 1:
        cases["py 1"] = offload_run(root, env, py_flow(1), True, cpu["py 1"])
        cases["py N"] = offload_run(root, env, py_flow(args.py), True, cpu["py N"])
        cases["python -c pass"] = loop([[python, "-c", "pass"]] * args.py, scratch, env)
        cases["python -c value"] = loop([[python, "-c", PASS_VALUE]] * args.py, scratch, env)
        cases["python3 (PATH) -c pass"] = loop([["python3", "-c", "pass"]] * 3, scratch, env)
    m = rounds.medians(cases, args.repeat, root)
    m.update({f"cpu {name}": statistics.median(values) for name, values in cpu.items() if values})
    print(f"median of {args.repeat} rounds; python3 on PATH runs {python}")
    if args.echo > 1:
        report_echo(m, args.echo)
    if args.py > 1:
        report_py(m, args.py)


def report_echo(m: dict[str, float], n: int) -> None:
    echo_task = (m["echo N"] - m["echo 1"]) / (n - 1)
    print(f"chain of {n} `sh>: echo` tasks: {m['echo N']:.3f} s wall (1 task: {m['echo 1']:.3f} s)")
    print(f"  offload, per task after the first  {echo_task * 1000:8.2f} ms")
    print(f"  offload driver CPU per task        {(m['cpu echo N'] - m['cpu echo 1']) / (n - 1) * 1000:8.2f} ms")
    print(f"  subprocess.run(sh -c echo)         {m['subprocess.run'] * 1000:8.2f} ms")
    print(f"  ratio: {echo_task / m['subprocess.run']:.2f}  (target <= {ECHO_TARGET})")


def report_py(m: dict[str, float], n: int) -> None:
    py_step = (m["py N"] - m["py 1"]) / (n - 1)
    print(f"chain of {n} `py>` steps passing a value: {m['py N']:.3f} s wall (1 step: {m['py 1']:.3f} s)")
    print(f"  offload, per step after the first  {py_step * 1000:8.2f} ms")
    print(f"  offload driver CPU per step        {(m['cpu py N'] - m['cpu py 1']) / (n - 1) * 1000:8.2f} ms")
    print(f"  python -c pass                     {m['python -c pass'] * 1000:8.2f} ms")
    print(f"  python -c passing the value        {m['python -c value'] * 1000:8.2f} ms")
    print(f"  python3 -c pass through PATH       {m['python3 (PATH) -c pass'] * 1000:8.2f} ms")
    print(f"  ratio to python -c pass: {py_step / m['python -c pass']:.2f}  (target <= {PY_TARGET})")
    print(f"  ratio to python -c passing the value: {py_step / m['python -c value']:.2f}")


if __name__ == "__main__":
    main()
