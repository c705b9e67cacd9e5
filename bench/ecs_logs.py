"""Log reading of the ECS backend at 1,000 running tasks, against a moto server on 127.0.0.1.

    .venv/bin/python bench/ecs_logs.py [--tasks 1000] [--foreign 100] [--cycles 160] [--interval 2] [--lines 60] [--write-window 60]

Both readers follow the same ``--tasks`` running tasks' CloudWatch Logs streams in the same
run, one after the other at every poll cycle (every ``--interval`` seconds):

* offload: ``tracking.poll`` (the describe schedule, and one ``FilterLogEvents`` query per log
  group for all tasks, ``offload_ecs.logs.Reader``);
* baseline: the reader offload had before, copied here: ``GetLogEvents`` per stream from the
  forward token kept in the handle, at most 8 streams per poll (those that wrote last time
  first, then the longest-waiting), quiet streams backed off up to every 8 s.

Every stream has a first line and has been read once before the measured cycles (the
baseline is given its tokens and a long quiet spell; offload runs ``--warmup`` cycles, until
the first lines are older than its overlap window), so both start from the steady state of
1,000 quiet tasks. ``--foreign`` streams of another run
under the same prefix get lines too (offload's query returns them and drops them). During the
first ``--write-window`` seconds a writer thread puts ``--lines`` lines, one at a time at
random moments, into random streams of ours; a line's latency is the time from its
``PutLogEvents`` to the end of the poll that hands it out, for each reader.

Per cycle: API calls by operation, CPU time of the polling thread (the moto server runs in
other threads of this process) and wall time. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ecs"))
os.environ.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)

from botocore.client import BaseClient  # noqa: E402
from ecs_harness.server import MotoServer  # noqa: E402
from ecs_harness.world import CLUSTER, LOG_GROUP, World  # noqa: E402

import offload  # noqa: E402
from offload.remote import find_marker  # noqa: E402
from offload_ecs import logs, tracking  # noqa: E402
from offload_ecs.aws import Aws, error_code  # noqa: E402
from offload_ecs.schedule import backoff, staggered  # noqa: E402

CALLS: Counter[str] = Counter()
LINE = re.compile(r"^bench-line (\d+)$")


class CountingAws(Aws):
    def _make(self, service: str, region: str | None) -> BaseClient:
        client = super()._make(service, region)
        client.meta.events.register("before-call", lambda model, **_: CALLS.update([model.name]))
        return client


class TimedReader(logs.Reader):
    """offload's reader, with the CPU time of its part of each poll."""

    cpu = 0.0

    def read(self, aws: Aws, states: Any, began: float | None = None) -> dict[int, logs.Update]:
        started = time.thread_time()
        try:
            return super().read(aws, states, began)
        finally:
            self.cpu = time.thread_time() - started


# -- the baseline: offload's reader before the bulk query (logs.py and schedule.pick_log_reads) --
MAX_PAGES, FIRST_QUIET, MAX_QUIET, LOG_READS_PER_POLL = 5, 0.25, 8.0, 8


def old_read(aws: Aws, state: dict[str, Any], now: float) -> tuple[list[str], dict[str, Any]]:
    from botocore.exceptions import ClientError

    token = state.get("log_token")
    lines: list[str] = []
    seen = bool(state.get("marker_seen"))
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"logGroupName": state["log_group"], "logStreamName": state["log_stream"], "startFromHead": True}
        if token:
            params["nextToken"] = token
        try:
            page = aws.call("logs", "get_log_events", region=state.get("log_region"), **params)
        except ClientError as e:
            if error_code(e) == "ResourceNotFoundException":
                break
            raise
        events = page.get("events") or []
        new_token = page.get("nextForwardToken") or token
        for event in events:
            message, which = find_marker(str(event.get("message", "")).rstrip("\r\n"), state["marker"])
            if which == "end":
                seen = True
                if message:
                    lines.append(message)
                continue
            lines.append(message)
        if not events or new_token == token:
            token = new_token
            break
        token = new_token
    quiet = 0 if lines else int(state.get("log_quiet") or 0) + 1
    due = staggered(str(state["log_stream"]), backoff(quiet, FIRST_QUIET, MAX_QUIET), now)
    return lines, {"log_token": token, "marker_seen": seen, "log_quiet": quiet, "log_due": due}


def old_pick_log_reads(states: list[dict[str, Any]], now: float, limit: int = LOG_READS_PER_POLL) -> set[int]:
    waiting: list[tuple[bool, float, int]] = []
    for index, state in enumerate(states):
        if state.get("log_stream"):
            when = float(state.get("log_due") or 0.0)
            if when <= now:
                waiting.append((int(state.get("log_quiet") or 0) > 0, when, index))
    if len(waiting) > limit:
        waiting.sort()
        del waiting[limit:]
    return {index for _, _, index in waiting}


def old_cycle(aws: Aws, states: list[dict[str, Any]]) -> list[str]:
    now = time.time()
    lines: list[str] = []
    for index in old_pick_log_reads(states, now):
        new, changes = old_read(aws, states[index], now)
        states[index].update(changes)
        lines.extend(new)
    return lines


# -- the setting ----------------------------------------------------------------------------------
def put(world: World, stream: str, message: str) -> None:
    world.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=[{"timestamp": int(time.time() * 1000), "message": message}])


class Writer(threading.Thread):
    """``count`` lines at random moments over ``window`` seconds, each to a random stream of ours
    (and as many to the foreign streams); the time each was written."""

    def __init__(self, world: World, ours: list[str], foreign: list[str], count: int, window: float) -> None:
        super().__init__(daemon=True)
        self.world, self.ours, self.foreign, self.count, self.window = world, ours, foreign, count, window
        self.written: dict[int, float] = {}
        self.rng = random.Random(7)

    def run(self) -> None:
        started = time.monotonic()
        moments = sorted(self.rng.uniform(0, self.window) for _ in range(self.count))
        for n, at in enumerate(moments):
            time.sleep(max(0.0, started + at - time.monotonic()))
            if self.foreign:
                put(self.world, self.rng.choice(self.foreign), f"bench-line {n}")  # the same text: only the stream tells
            self.written[n] = time.time()
            put(self.world, self.rng.choice(self.ours), f"bench-line {n}")


def handed_out(lines: list[str], at: float, into: dict[int, list[float]]) -> None:
    for line in lines:
        match = LINE.match(line)
        if match:
            into.setdefault(int(match[1]), []).append(at)


def summary(latencies: list[float]) -> str:
    if not latencies:
        return "none"
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ordered):.1f} s, p95 {p95:.1f} s, max {ordered[-1]:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description="log reading of offload-ecs at scale, against moto")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--foreign", type=int, default=100, help="streams of another run under the same prefix")
    parser.add_argument("--cycles", type=int, default=160)
    parser.add_argument("--warmup", type=int, default=14, help="cycles before measuring (first lines out of the overlap window)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls (the core's ceiling is 2)")
    parser.add_argument("--lines", type=int, default=60)
    parser.add_argument("--write-window", type=float, default=60.0)
    args = parser.parse_args()
    server = MotoServer()
    server.start()
    try:
        world = World(server)
        with offload.Executor(world.config()) as executor:
            run(world, executor.backends.get("ecs"), args)
    finally:
        server.stop()


def run(world: World, backend: Any, args: argparse.Namespace) -> None:
    config, storage = backend.config, backend.storage
    arns = world.run_idle_tasks(args.tasks, f"bench-logs-{uuid.uuid4().hex[:6]}")
    ours = [f"offload/main/{a.rsplit('/', 1)[-1]}" for a in arns]
    foreign = [f"offload/main/{uuid.uuid4().hex}" for _ in range(args.foreign)]
    for stream in ours + foreign:  # every task has written its first line
        world.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        put(world, stream, "started")
    now = time.time()
    base = {"cluster": CLUSTER, "region": "us-east-1", "container": "main", "timeout": None, "log_group": LOG_GROUP, "log_region": None}
    handles = [
        offload.Handle("ecs", f"t{i}", "/tmp/bench", {**base, "task_arn": a, "marker": f"end-of-log {i}", "submitted_at": now - 60, "log_stream": s})
        for i, (a, s) in enumerate(zip(arns, ours, strict=True))
    ]
    aws, old_aws = CountingAws(config), CountingAws(config)
    aws.client("ecs"), aws.client("logs"), old_aws.client("logs")  # in a run, submit has made them
    old_states = [{**h.state, "log_token": None} for h in handles]
    for state in old_states:  # the baseline's steady state: every stream read once, quiet for long
        state.update(old_read(old_aws, state, now)[1])
        state.update(log_quiet=10, log_due=staggered(str(state["log_stream"]), MAX_QUIET, now))
    reader = TimedReader()
    for _ in range(args.warmup):  # offload's steady state: every task described, every stream searched
        statuses = tracking.poll(aws, storage, config, handles, set(), reader)
        handles = [s.handle or h for s, h in zip(statuses, handles, strict=True)]
        time.sleep(args.interval)
    print(f"{args.tasks} running tasks, {args.foreign} foreign streams, {args.lines} lines over {args.write_window:g} s, polls every {args.interval:g} s")
    writer = Writer(world, ours, foreign, args.lines, args.write_window)
    writer.start()
    ours_out: dict[int, list[float]] = {}
    old_out: dict[int, list[float]] = {}
    rows = []
    for _ in range(args.cycles):
        began = time.perf_counter()
        CALLS.clear()
        cpu, wall = time.thread_time(), time.perf_counter()
        statuses = tracking.poll(aws, storage, config, handles, set(), reader)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        done = time.time()
        handles = [s.handle or h for s, h in zip(statuses, handles, strict=True)]
        assert all(s.state is offload.TaskState.RUNNING for s in statuses)
        for status in statuses:
            handed_out(status.logs, done, ours_out)
        calls = dict(CALLS)
        CALLS.clear()
        old_cpu, old_wall = time.thread_time(), time.perf_counter()
        lines = old_cycle(old_aws, old_states)
        old_cpu, old_wall = time.thread_time() - old_cpu, time.perf_counter() - old_wall
        handed_out(lines, time.time(), old_out)
        rows.append((calls, cpu, reader.cpu, wall, dict(CALLS), old_cpu, old_wall))
        if not writer.is_alive() and len(old_out) == len(writer.written) and len(ours_out) == len(writer.written):
            break
        time.sleep(max(0.0, args.interval - (time.perf_counter() - began)))
    report(args, rows, writer.written, ours_out, old_out)


def report(
    args: argparse.Namespace,
    rows: list[tuple[Mapping[str, int], float, float, float, Mapping[str, int], float, float]],
    written: dict[int, float],
    ours_out: dict[int, list[float]],
    old_out: dict[int, list[float]],
) -> None:
    end = time.time()
    for n, (calls, cpu, read_cpu, wall, old_calls, old_cpu, old_wall) in enumerate(rows):
        print(
            f"    cycle {n}: offload {dict(calls)} CPU {cpu * 1000:.1f} ms (logs {read_cpu * 1000:.1f} ms) wall {wall * 1000:.0f} ms | "
            f"baseline {dict(old_calls)} CPU {old_cpu * 1000:.1f} ms wall {old_wall * 1000:.0f} ms"
        )
    filters = [r[0].get("FilterLogEvents", 0) for r in rows]
    gets = [r[4].get("GetLogEvents", 0) for r in rows]
    describes = [r[0].get("DescribeTasks", 0) for r in rows]
    cpu = [r[1] for r in rows]
    read_cpu = [r[2] for r in rows]
    old_cpu = [r[5] for r in rows]
    print(f"{len(rows)} measured cycles, {args.tasks} tasks; load average {os.getloadavg()}")
    print(
        f"  log calls per cycle: offload FilterLogEvents max {max(filters)}, mean {statistics.mean(filters):.2f} (and DescribeTasks max {max(describes)}); "
        f"baseline GetLogEvents max {max(gets)}, mean {statistics.mean(gets):.2f}"
    )
    print(
        f"  CPU per cycle, log reading: offload max {max(read_cpu) * 1000:.1f} ms, mean {statistics.mean(read_cpu) * 1000:.1f} ms; "
        f"baseline max {max(old_cpu) * 1000:.1f} ms, mean {statistics.mean(old_cpu) * 1000:.1f} ms; "
        f"ratio (means) {statistics.mean(old_cpu) / max(statistics.mean(read_cpu), 1e-9):.1f}x"
    )
    print(f"  CPU per cycle, offload's whole poll (describes + logs): max {max(cpu) * 1000:.1f} ms, mean {statistics.mean(cpu) * 1000:.1f} ms")
    for label, out in (("offload", ours_out), ("baseline", old_out)):
        twice = sum(1 for times in out.values() if len(times) > 1)
        latencies = [out[n][0] - at for n, at in written.items() if n in out]
        missing = [end - at for n, at in written.items() if n not in out]
        late = f"; {len(missing)} not handed out by the end (waiting {min(missing):.0f} to {max(missing):.0f} s)" if missing else ""
        print(f"  latency write -> handed out, {label}: {summary(latencies)} over {len(latencies)} lines; handed out twice: {twice}{late}")
    ours_max = max((out[0] - written[n] for n, out in ours_out.items() if n in written), default=0.0)
    old_lat = [old_out[n][0] - at for n, at in written.items() if n in old_out]
    if old_lat and ours_max:
        print(f"  ratio of the worst latencies: {max(old_lat) / ours_max:.0f}x")


if __name__ == "__main__":
    main()
