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
