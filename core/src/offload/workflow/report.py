"""What ``offload run`` prints: live log lines prefixed with the task, events, the summary."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from offload.workflow.nodes import Node


class Console:
    """Log lines go to stdout as ``[+flow+task] line``; events to stderr."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def log(self, task: str, line: str) -> None:
        self.out.write(f"[{task}] {line}\n")
        self.out.flush()

    def event(self, task: str, message: str) -> None:
        self.err.write(f"offload: {task}: {message}\n")
        self.err.flush()


def _rows(node: Node) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for n in node.operator_nodes():
        result = n.result
        state = n.state.value
        code = "" if result is None or result.exit_code is None else str(result.exit_code)
        duration = "" if result is None or result.duration is None else f"{result.duration:.3f}s"
        rows.append((n.task.name, n.backend or "-", state, code, duration))
    return rows


def summary_table(root: Node) -> str:
    header = ("task", "backend", "status", "exit", "duration")
    rows = [header, *_rows(root)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
