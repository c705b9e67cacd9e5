"""Shared by the CLI tests of Digdag's semantics: run a workflow text with ``offload run``
and pick a task's lines out of the output (the ``project`` fixture is in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.workflow.cli import main


def run(project: Path, capsys: pytest.CaptureFixture[str], flow: str, *args: str) -> tuple[int, list[str], str]:
    """``offload run`` of ``flow`` written to ``project/flow.dig``: exit status, stdout lines, stderr."""
    (project / "flow.dig").write_text(flow)
    code = main(["run", str(project / "flow.dig"), *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def log(lines: list[str], task: str) -> list[str]:
    """The lines ``task`` logged."""
    prefix = f"[{task}] "
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def logged(lines: list[str]) -> list[str]:
    """Every task's log lines, with their ``[task]`` prefix, in order."""
    return [line for line in lines if line.startswith("[")]
