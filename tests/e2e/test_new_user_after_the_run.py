"""Issue 12's "done when": a new user runs examples/hello, then finds the run in
``offload runs``, reads a task's log with ``offload logs`` and opens ``offload report``'s
page, looked at in a real headless Chromium (the screenshot stays in the test's directory)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from chromium_page import colours, rendered_dom, screenshot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def offload(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OFFLOAD_EXECUTOR": "local"}
    return subprocess.run([sys.executable, "-m", "offload.workflow.cli", *args], cwd=project, capture_output=True, text=True, timeout=120, env=env)


def test_hello_then_runs_logs_and_the_report(tmp_path: Path) -> None:
    project = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", project, ignore=shutil.ignore_patterns(".offload", "data", "__pycache__"))
    ran = offload(project, "run", "flow.dig")
    assert ran.returncode == 0, ran.stdout + ran.stderr

    runs = offload(project, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    (run,) = json.loads(runs.stdout)["runs"]
    assert run["workflow"] == "flow" and run["state"] == "succeeded" and run["tasks"] == {"succeeded": 5}
    table = offload(project, "runs")
    assert run["run_id"] in table.stdout and "succeeded" in table.stdout

    logs = offload(project, "logs", "report")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["3 numbers adding up to 16 (region eu, Hello again)"]

    page = tmp_path / "run.html"
    made = offload(project, "report", "-o", str(page))
    assert made.returncode == 0, made.stderr
    dom = rendered_dom(tmp_path, page)
    tasks = {node.attrs["data-task"] for node in dom.walk() if "data-task" in node.attrs}
    assert {"+flow+prepare", "+flow+measure+count", "+flow+measure+total", "+flow+report", "+flow+check"} <= tasks
    shot = screenshot(tmp_path, page, "hello-report.png")
    assert len(colours(shot)) > 2, "the screenshot shows no timeline"
