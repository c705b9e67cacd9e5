"""The real ``offload`` CLI killed with SIGKILL right after ECS started a task and before
the driver journaled its handle: the next ``offload run`` adopts that task, and every
task runs exactly once.

The moment is made exact by the harness, not by timing: it holds back the answer to
``run_task`` after moto has started the task (as a driver killed while the answer is on
its way), the test checks the journal still says "submitting", and kills the driver.
"""

from __future__ import annotations

import queue
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from ecs_harness.world import IMAGE, World

OFFLOAD = [sys.executable, "-m", "offload.workflow.cli"]


def flow(runs: Path, gate: Path) -> str:
    r, g = shlex.quote(str(runs)), shlex.quote(str(gate))
    return f"""\
_export:
  docker:
    image: {IMAGE}
+first:
  sh>: |
    echo first >> {r}
    echo first is running
    while [ ! -f {g} ]; do sleep 0.05; done
    echo '{{"store_params": {{"token": "from-first"}}}}' > "$OFFLOAD_IO_DIR/output.json"
+second:
  sh>: echo "second ${{token}}" >> {r}
"""


def journal_rows(project: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(f"file:{project / '.offload' / 'journal.sqlite'}?mode=ro", uri=True) as db:
        return list(db.execute("SELECT task_id, state, handle FROM tasks"))


def reader(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Every line of ``proc``'s output as it comes, then ``None``."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def read_until(lines: queue.Queue[str | None], needle: str, seen: list[str], limit: float = 120) -> None:
    """Add lines to ``seen`` up to the one with ``needle``, within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return
    pytest.fail(f"never saw {needle!r}; output:\n{''.join(seen)}")


def test_sigkill_after_run_task_then_run_again_adopts_the_task(world: World, tmp_path: Path) -> None:
    project, runs, gate = tmp_path / "project", tmp_path / "runs.log", tmp_path / "gate"
    project.mkdir()
    (project / "flow.dig").write_text(flow(runs, gate))
    config = tmp_path / "offload.yml"
    config.write_text(yaml.safe_dump({"command_executor": {"ecs": world.section()}}))
    assert world.server.tokens is not None
    calls = len(world.server.tokens.seen)

    hold = world.server.faults.hold("RunTask")
    driver = subprocess.Popen([*OFFLOAD, "run", "flow.dig", "-c", str(config)], cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert hold.reached.wait(120), "the driver never called run_task"
        ((task_id, state, handle),) = journal_rows(project)
        assert (state, handle) == ("submitting", None)  # ECS has the task; the journal does not
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        hold.release()
        if driver.poll() is None:
            driver.kill()
    tagged = [t for t in world.agent.tasks() if {"key": "offload.task-id", "value": task_id} in (t.tags or [])]
    assert len(tagged) == 1

    again = subprocess.Popen([*OFFLOAD, "run", "flow.dig", "-c", str(config)], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        lines = reader(again)
        read_until(lines, "first is running", seen)  # the adopted task's log, from its first line
        gate.write_text("")
        again.wait(120)
        while (line := lines.get(timeout=30)) is not None:
            seen.append(line)
    finally:
        if again.poll() is None:
            again.kill()
    output = "".join(seen)
    assert again.returncode == 0, output
    assert runs.read_text().splitlines() == ["first", "second from-first"], output
    assert len(world.server.tokens.seen) - calls == 2  # one run_task per task, none for the adopted one
    assert len([t for t in world.agent.tasks() if {"key": "offload.task-id", "value": task_id} in (t.tags or [])]) == 1
    for _task_id, _state, stored in journal_rows(project):
        assert stored is None or "X-Amz-Signature" not in stored
