"""AWS API calls and poll CPU time of the ECS backend, against a moto server on 127.0.0.1.

    .venv/bin/python bench/ecs_api_calls.py [--definitions 1000] [--tasks 1000] [--cycles 5]

(a) Resolving an image to its task definition among N registered definitions:
    offload (one filtered Resource Groups Tagging call + one describe; 0 when cached)
    against Digdag's algorithm (list every definition, then one tag call per definition
    until the tag matches; its issue #1488), implemented here as the baseline.
(b) describe calls per poll cycle while tracking N running tasks: offload's batched
    describe_tasks against one call per task (Digdag polls each task on its own).
(c) CPU time of one poll cycle at N tasks (this thread only; the moto server runs in
    other threads), offload's poll against the per-task baseline.
API calls are counted with botocore's ``before-call`` event hook on every client.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ecs"))
os.environ.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)

import boto3  # noqa: E402
from botocore.client import BaseClient  # noqa: E402
from ecs_harness.server import MotoServer  # noqa: E402
from ecs_harness.world import CLUSTER, World  # noqa: E402

import offload  # noqa: E402
from offload_ecs import logs, schedule, taskdefs, tracking  # noqa: E402
from offload_ecs.aws import Aws  # noqa: E402
from offload_ecs.config import EcsConfig  # noqa: E402
from offload_ecs.taskconfig import EcsTaskSettings  # noqa: E402

CALLS: Counter[str] = Counter()


def count(model: Any, **_: Any) -> None:
    CALLS[model.name] += 1


def counted(client: BaseClient) -> BaseClient:
    client.meta.events.register("before-call", count)
    return client


class CountingAws(Aws):
    def _make(self, service: str, region: str | None) -> BaseClient:
        return counted(super()._make(service, region))


def digdag_resolve(ecs: BaseClient, image: str) -> str | None:
    """Digdag's way: list every task definition, then ask for the tags of each one."""
    arns: list[str] = []
    token = None
    while True:
        page = ecs.list_task_definitions(**({"nextToken": token} if token else {}))
        arns.extend(page["taskDefinitionArns"])
        token = page.get("nextToken")
        if not token:
            break
    for arn in arns:
        tags = ecs.list_tags_for_resource(resourceArn=arn)["tags"]
        if any(t["key"] == "digdag.docker.image" and t["value"] == image for t in tags):
            return arn
    return None


def calls_of(fn: Any) -> tuple[Any, int]:
    CALLS.clear()
    value = fn()
    return value, sum(CALLS.values())


def bench_resolution(world: World, config: EcsConfig, n: int) -> None:
    images = [f"registry.example/job-{i}:{uuid.uuid4().hex[:6]}" for i in range(n)]
    for image in images:  # both tags, so each algorithm finds its own
        world.ecs.register_task_definition(
            family=f"job-{uuid.uuid4().hex[:10]}",
            containerDefinitions=[{"name": "main", "image": image, "memory": 512}],
            tags=[{"key": "offload.docker.image", "value": image}, {"key": "digdag.docker.image", "value": image}],
        )
    ecs = counted(boto3.client("ecs", endpoint_url=world.url, region_name="us-east-1", aws_access_key_id="b", aws_secret_access_key="b"))
    print(f"(a) resolving an image among {n} task definitions")
    for label, target in (("middle", images[n // 2]), ("last", images[-1])):
        aws = CountingAws(config)
        taskdefs.clear_cache()
        t0 = time.perf_counter()
        found, ours = calls_of(lambda target=target, aws=aws: taskdefs.resolve(aws, EcsTaskSettings(image=target), ("bench",)).arn)
        ours_s = time.perf_counter() - t0
        _, cached = calls_of(lambda target=target, aws=aws: taskdefs.resolve(aws, EcsTaskSettings(image=target), ("bench",)).arn)
        t0 = time.perf_counter()
        theirs_arn, theirs = calls_of(lambda target=target: digdag_resolve(ecs, target))
        theirs_s = time.perf_counter() - t0
        assert found == theirs_arn, (found, theirs_arn)
        print(
            f"    image {label:6}: offload {ours} calls ({ours_s * 1000:.0f} ms), cached {cached}; "
            f"digdag {theirs} calls ({theirs_s * 1000:.0f} ms); ratio {theirs / max(ours, 1):.0f}x fewer calls"
        )


def bench_polling(world: World, config: EcsConfig, storage: offload.Storage, n: int, cycles: int, interval: float) -> None:
    arns = world.run_idle_tasks(n, f"bench-idle-{uuid.uuid4().hex[:6]}")
    for a in arns:  # quiet tasks: their streams exist and hold nothing new
        world.logs.create_log_stream(logGroupName="/offload/test", logStreamName=f"offload/main/{a.rsplit('/', 1)[-1]}")
    now = time.time()
    handles = [
        offload.Handle(
            "ecs",
            f"t{i}",
            "/tmp/bench",
            {
                "cluster": CLUSTER,
                "region": "us-east-1",
                "task_arn": a,
                "container": "main",
                "marker": "m",
                "submitted_at": now,
                "timeout": None,
                "log_group": "/offload/test",
                "log_region": None,
                "log_stream": f"offload/main/{a.rsplit('/', 1)[-1]}",
            },
        )
        for i, a in enumerate(arns)
    ]
    aws = CountingAws(config)
    reader = logs.Reader()  # the backend keeps one between polls
    cpu = time.thread_time()
    aws.client("ecs"), aws.client("logs")  # in a run, submit has made them before the first poll
    clients_cpu = time.thread_time() - cpu
    print(f"(b)+(c) polling {n} running tasks, all submitted at once, every {interval:g} s for {cycles + 1} cycles")
    rows = []
    polled = time.time()
    seen = {h.task_id: float(h.state["submitted_at"]) for h in handles}  # last described (or submitted)
    gap = 0.0
    for cycle in range(cycles + 1):
        CALLS.clear()
        cpu = time.thread_time()
        wall = time.perf_counter()
        statuses = tracking.poll(aws, storage, config, handles, set(), reader)
        cpu = time.thread_time() - cpu
        wall = time.perf_counter() - wall
        polled = time.time()
        handles = [s.handle or h for s, h in zip(statuses, handles, strict=True)]
        assert all(s.state is offload.TaskState.RUNNING for s in statuses)
        for h in handles:  # the status latency: the longest a task went without being described
            at = h.state.get("described_at")
            if at is not None and float(at) > seen[h.task_id]:
                gap = max(gap, float(at) - seen[h.task_id])
                seen[h.task_id] = float(at)
        rows.append((cycle, CALLS["DescribeTasks"], CALLS["FilterLogEvents"], cpu, wall))
        time.sleep(interval)
    for cycle, describes, log_reads, cpu, wall in rows:
        print(f"    cycle {cycle}: describe_tasks {describes}, filter_log_events {log_reads}, CPU {cpu * 1000:.1f} ms, wall {wall * 1000:.0f} ms")
    gap = max([gap] + [polled - at for at in seen.values()])  # not described since, at the last cycle
    cpu_max = max(r[3] for r in rows)
    cpu_avg = sum(r[3] for r in rows) / len(rows)
    describes_max = max(r[1] for r in rows)
    describes_avg = sum(r[1] for r in rows) / len(rows)
    ecs = counted(boto3.client("ecs", endpoint_url=world.url, region_name="us-east-1", aws_access_key_id="b", aws_secret_access_key="b"))
    CALLS.clear()
    cpu = time.thread_time()
    for a in arns:  # the baseline: one describe per task and poll
        ecs.describe_tasks(cluster=CLUSTER, tasks=[a])
    base_cpu = time.thread_time() - cpu
    base_calls = CALLS["DescribeTasks"]
    print(
        f"    (b) describe calls per cycle: offload max {describes_max}, mean {describes_avg:.1f}; per-task baseline {base_calls}; "
        f"ratio {base_calls / max(describes_max, 1):.0f}x fewer (worst cycle)"
    )
    print(
        f"    (c) CPU per cycle over all {len(rows)} cycles: offload max {cpu_max * 1000:.1f} ms, mean {cpu_avg * 1000:.1f} ms; "
        f"per-task baseline {base_cpu * 1000:.0f} ms; ratio {base_cpu / max(cpu_max, 1e-9):.0f}x less (worst cycle)"
    )
    print(f"        making the boto3 clients (before the first cycle; submit does it in a run): {clients_cpu * 1000:.0f} ms CPU")
    print(f"        longest time between two describes of a task: {gap:.1f} s (bound: {schedule.MAX_WAIT:g} s + one poll interval)")


def main() -> None:
    parser = argparse.ArgumentParser(description="API calls and poll CPU of offload-ecs against moto")
    parser.add_argument("--definitions", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=15)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls (the core's ceiling is 2)")
    args = parser.parse_args()
    server = MotoServer()
    server.start()
    try:
        world = World(server)
        with offload.Executor(world.config()) as executor:
            backend: Any = executor.backends.get("ecs")
            bench_resolution(world, backend.config, args.definitions)
            bench_polling(world, backend.config, backend.storage, args.tasks, args.cycles, args.interval)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
