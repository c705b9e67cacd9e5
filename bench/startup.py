"""Start-up cost of the ``offload`` command against bare Python, measured in the same run.

    .venv/bin/python bench/startup.py [--repeat 15]

Median wall time of N runs of each, interleaved (one of each per round) so that machine
drift hits all alike:

1. ``python -c pass`` (the baseline);
2. ``offload --version``;
3. ``offload run one.dig`` of a one-task local workflow (``+a: {sh>: echo hi}``) with no
   config, every installed plugin loaded;
4. the same with ``OFFLOAD_DISABLE_PLUGINS=docker,ecs,kubernetes,s3,gcs``.

Each ``run`` gets a fresh project directory, so the journal never grows. Bytecode is
cached as an installed wheel's would be (``PYTHONPYCACHEPREFIX`` in a temporary
directory, ``PYTHONDONTWRITEBYTECODE`` unset: the editable sources are not compiled on
every start); ``--no-bytecode-cache`` keeps the caller's environment instead. Prints each
median and its difference and ratio against the baseline.
Targets (issue 13): ``offload --version`` under 50 ms above bare Python; ``offload run``
of the one-task workflow at most 0.25 s wall with every plugin installed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import rounds

WORKFLOW = "+a:\n  sh>: echo hi\n"
HEAVY_PLUGINS = "docker,ecs,kubernetes,s3,gcs"
VERSION_TARGET = 0.050
RUN_TARGET = 0.25


def offload_command() -> list[str]:
    """The installed ``offload`` script next to this Python, else ``python -m offload``."""
    script = Path(sys.executable).parent / "offload"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "offload"]


def clean_env(pycache: Path | None, **extra: str) -> dict[str, str]:
    """The caller's environment without OFFLOAD_* (no config), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(extra)
    return env


def timed(argv: list[str], env: dict[str, str], cwd: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def run_in_fresh_project(root: Path, argv: list[str], env: dict[str, str]) -> Callable[[], float]:
    def once() -> float:
        project = Path(tempfile.mkdtemp(dir=root))
        (project / "one.dig").write_text(WORKFLOW)
        return timed([*argv, "run", "one.dig"], env, cwd=str(project))

    return once


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15, help="runs of each; the median counts")
    parser.add_argument("--no-bytecode-cache", action="store_true", help="keep PYTHONDONTWRITEBYTECODE and PYTHONPYCACHEPREFIX as they are")
    args = parser.parse_args()
    offload = offload_command()
    root = Path(tempfile.mkdtemp(prefix="offload-bench-startup-"))
    pycache = None if args.no_bytecode_cache else root / "pycache"
    env = clean_env(pycache)
    cases: dict[str, Callable[[], float]] = {
        "python -c pass": lambda: timed([sys.executable, "-c", "pass"], env),
        "offload --version": lambda: timed([*offload, "--version"], env),
        "offload run one.dig": run_in_fresh_project(root, offload, env),
        "offload run, heavy plugins disabled": run_in_fresh_project(root, offload, clean_env(pycache, OFFLOAD_DISABLE_PLUGINS=HEAVY_PLUGINS)),
    }
    medians = rounds.medians(cases, args.repeat, root)
    bare = medians["python -c pass"]
    cache = "as the caller's environment says" if pycache is None else "cached"
    print(f"start-up, median of {args.repeat} ({' '.join(offload)}; bytecode {cache}):")
    for name, value in medians.items():
        print(f"  {name:38s} {value * 1000:7.1f} ms   +{(value - bare) * 1000:6.1f} ms   x{value / bare:5.2f}")
    version = medians["offload --version"] - bare
    run = medians["offload run one.dig"]
    print(f"offload --version above bare Python: {version * 1000:.1f} ms  (target < {VERSION_TARGET * 1000:.0f} ms)")
    print(f"offload run one.dig, all plugins:    {run:.3f} s  (target <= {RUN_TARGET} s)")
    disabled = medians["offload run, heavy plugins disabled"]
    print(f"cost of loading the heavy plugins:   {(run - disabled) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
