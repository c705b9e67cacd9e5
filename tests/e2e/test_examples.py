"""The examples a new user runs first, run as they would run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_hello_example_runs_with_the_local_backend(tmp_path: Path) -> None:
    project = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", project, ignore=shutil.ignore_patterns(".offload", "data", "__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "offload.workflow.cli", "run", "flow.dig"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OFFLOAD_EXECUTOR": "local"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # sh>, py> (function and Class.method), a parallel group, params flowing between tasks
    assert "[+flow+measure+count] data/numbers.txt has 3 lines" in proc.stdout
    assert "[+flow+measure+total] total 16 (region eu)" in proc.stdout
    assert "[+flow+report] 3 numbers adding up to 16 (region eu, Hello again)" in proc.stdout
    assert "[+flow+check] check passed" in proc.stdout


def test_embedding_example_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "embed.py")], cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "OFFLOAD_EXECUTOR": "local"}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "log: hello from an embedded task" in proc.stdout
    assert "result: succeeded exit=0 store_params={'answer': 42}" in proc.stdout
