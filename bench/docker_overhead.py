"""Overhead of offload's Docker backend against the docker CLI, measured in the same run.

    bash scripts/setup_docker.sh && .venv/bin/python bench/docker_overhead.py [--tasks 20]

1. N tasks running ``true``: through offload (``Executor.run``) and with
   ``docker run --rm IMAGE true`` (the CLI), alternating one of each so that machine
   drift hits both alike; the ratio is offload's total over the CLI's (target: at most
   1.0). N tasks submitted at once through offload are timed too, for scale.
2. A task whose image has ``build:`` lines: the first run builds the image; the second,
   with the spec unchanged, only decides that no build is needed (target: zero builds,
   under 50 ms to decide).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

import offload
from offload.testing import make_request, wait_for
from offload_docker.images import prepare

IMAGE = os.environ.get("OFFLOAD_TEST_IMAGE", "offload-test-base:bookworm")


class BuildCounter:
    def __init__(self) -> None:
        self.builds = 0

    @offload.hookimpl(wrapper=True)
    def offload_build_image(self, spec: offload.ImageSpec, dockerfile: str, tag: str, log: Callable[[str], None], engine: Any, options: Any) -> Any:
        self.builds += 1
        return (yield)


def executor(pm: Any = None) -> offload.Executor:
    return offload.Executor({"command_executor": {"type": "docker"}}, plugin_manager=pm)


def one_offload(ex: offload.Executor, project: Path) -> float:
    start = time.perf_counter()
    result = ex.run(make_request(project, "true", {"docker": {"image": IMAGE}}), backend="docker")
    assert result.ok, result
    return time.perf_counter() - start


def one_cli() -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", IMAGE, "true"], check=True)
    return time.perf_counter() - start


def interleaved(project: Path, n: int) -> tuple[list[float], list[float]]:
    """Per-task times of offload and the CLI, alternating so that drift hits both alike."""
    offload_times: list[float] = []
    cli_times: list[float] = []
    with executor() as ex:
        one_offload(ex, project)  # warm both paths once
        one_cli()
        for _ in range(n):
            offload_times.append(one_offload(ex, project))
            cli_times.append(one_cli())
    return offload_times, cli_times


def offload_concurrent(project: Path, n: int) -> float:
    with executor() as ex:
        start = time.perf_counter()
        handles = [ex.submit(make_request(project, "true", {"docker": {"image": IMAGE}}), backend="docker") for _ in range(n)]
        for handle in handles:
            result, _ = wait_for(ex, handle)
            assert result.ok, result
        return time.perf_counter() - start


def build_decision(project: Path) -> tuple[float, float, float, int]:
    """(first run s, second run s, decide-no-build ms, builds in second run)."""
    counter = BuildCounter()
    pm = offload.make_plugin_manager([("bench-counter", counter)])
    config = {"docker": {"image": IMAGE, "build": [f"echo bench {uuid.uuid4().hex} > /bench"]}}
    client = docker.from_env()
    spec = offload.ImageSpec(IMAGE, config["docker"]["build"])
    tag = offload.image_tag(spec, offload.default_dockerfile(spec))
    try:
        with executor(pm) as ex:
            start = time.perf_counter()
            assert ex.run(make_request(project, "cat /bench", config), backend="docker").ok
            first = time.perf_counter() - start
            builds_before = counter.builds
            start = time.perf_counter()
            assert ex.run(make_request(project, "cat /bench", config), backend="docker").ok
            second = time.perf_counter() - start
            settings = ex.select(make_request(project, "true", config)).settings
            assert settings is not None
            start = time.perf_counter()
            for _ in range(20):
                prepare(client, "default", settings, pm.hook, lambda line: None)
            decide_ms = (time.perf_counter() - start) / 20 * 1000
            return first, second, decide_ms, counter.builds - builds_before
    finally:
        client.images.remove(tag, force=True)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20)
    n = parser.parse_args().tasks
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        offload_times, cli_times = interleaved(project, n)
        conc = offload_concurrent(project, n)
        first, second, decide_ms, builds = build_decision(project)
    seq, cli = sum(offload_times), sum(cli_times)
    print(f"{n} tasks running `true` on {IMAGE} (offload and the CLI alternating)")
    print(f"  docker run --rm (CLI):           total {cli:6.2f} s  median {statistics.median(cli_times) * 1000:5.0f} ms/task")
    print(f"  offload (Executor.run):          total {seq:6.2f} s  median {statistics.median(offload_times) * 1000:5.0f} ms/task")
    print(f"  offload, all submitted at once:  total {conc:6.2f} s  {conc / n * 1000:5.0f} ms/task")
    print(f"  ratio offload/CLI per task:      {seq / cli:6.2f} (target <= 1.0)")
    print("image with build: lines")
    print(f"  first run (builds):                       {first:6.2f} s")
    print(f"  second run, spec unchanged:               {second:6.2f} s  builds: {builds}")
    print(f"  deciding no build is needed:              {decide_ms:6.1f} ms (target < 50 ms)")


if __name__ == "__main__":
    main()
