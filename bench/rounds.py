"""Shared by the benches: run every case once to warm caches, then ``repeat`` interleaved
rounds (so a burst of load on this shared machine hits every case alike), and give each
case's median."""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable, Mapping
from pathlib import Path


def medians(cases: Mapping[str, Callable[[], float]], repeat: int, scratch: Path) -> dict[str, float]:
    """Each case's median seconds over ``repeat`` rounds; ``scratch`` is removed at the end."""
    try:
        for case in cases.values():  # warm the file cache and .pyc files
            case()
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(repeat):
            for name, case in cases.items():
                samples[name].append(case())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {name: statistics.median(values) for name, values in samples.items()}


#: ``offload run flow.dig`` in this interpreter, writing its own CPU time to $BENCH_CPU when it exits.
DRIVER = """\
import atexit, os, resource, runpy, sys
def _report():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["BENCH_CPU"], "w") as f:
        f.write(repr(ru.ru_utime + ru.ru_stime))
atexit.register(_report)
sys.argv = ["offload", "run", "flow.dig"]
runpy.run_module("offload.workflow.cli", run_name="__main__", alter_sys=True)
"""
