"""The three jobs as a Prefect 3 user writes them: ``python prefect_flows.py seq|parallel|chain``.

Each task runs its shell command with ``subprocess``; the parallel job ``.submit()``s its
tasks to the flow's default task runner (a thread pool). Runs in Prefect's ephemeral
mode: no ``PREFECT_API_URL``, so Prefect starts a temporary API server on loopback.
"""

from __future__ import annotations

import subprocess
import sys

from prefect import flow, get_run_logger, task
from prefect.futures import wait


def sh(command: str) -> str:
    return subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout.strip()


@task
def echo(i: int) -> None:
    get_run_logger().info(sh(f"echo {i}"))


@task
def sleep() -> None:
    sh("sleep 0.2")


@task
def add_one(v: int) -> int:
    return int(sh(f"echo $(({v} + 1))"))


@flow
def seq() -> None:
    for i in range(50):
        echo(i)


@flow
def parallel() -> None:
    wait([sleep.submit() for _ in range(200)])


@flow
def chain() -> int:
    v = 0
    for _ in range(20):
        v = add_one(v)
    return v


if __name__ == "__main__":
    job = sys.argv[1]
    result = {"seq": seq, "parallel": parallel, "chain": chain}[job]()
    print(f"result={result}")
