"""What ``offload run`` prints: live log lines prefixed with the task, events, the summary,
and on a terminal one status line of the run's progress kept under them."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from offload.workflow.nodes import Node
    from offload.workflow.runner import Progress

#: Seconds between two refreshes of the status line (at most ~4 a second).
REFRESH = 0.25
#: Go to the start of the line and erase it: how the status line is taken away.
CLEAR = "\r\x1b[K"


class Progressing(Protocol):
    """What the status line reads: a :class:`offload.workflow.runner.Run`."""

    def progress(self) -> Progress: ...


def progress_text(progress: Progress) -> str:
    """The status line: ``offload: 2 running (docker 1, local 1), 3 done, 0 failed, 4 waiting; 0:12 elapsed``.

    Done is succeeded; failed counts failed and lost tasks; waiting counts the tasks not
    started yet and those being submitted; cancelled tasks are shown when there are any.
    """
    states = progress.by_state
    running = states.get("running", 0)
    backends = ", ".join(f"{name} {n}" for name, n in sorted(progress.running_by_backend.items()))
    parts = [f"{running} running" + (f" ({backends})" if backends else "")]
    parts.append(f"{states.get('succeeded', 0)} done")
    parts.append(f"{states.get('failed', 0) + states.get('lost', 0)} failed")
    parts.append(f"{states.get('pending', 0) + states.get('submitting', 0)} waiting")
    if states.get("cancelled"):
        parts.append(f"{states['cancelled']} cancelled")
    return f"offload: {', '.join(parts)}; {clock(progress.elapsed)} elapsed"


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


class Console:
    """Log lines go to stdout as ``[+flow+task] line``; events to stderr as ``offload: task: message``.

    When stderr is a terminal (and ``TERM`` is not ``dumb``), the run's progress is one
    status line at the bottom of stderr (:func:`progress_text`), refreshed from
    :meth:`tick` at most every :data:`REFRESH` seconds. Before a log line or an event is
    printed the status line is erased, and it is drawn again after, so it never mixes
    with them; :meth:`close` erases it for good. Elsewhere (a pipe, a file, CI) nothing
    but plain lines is written: no carriage return, no escape sequence.
    """

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, live: bool | None = None, now: Callable[[], float] = time.monotonic) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        if live is None:
            live = _is_terminal(self.err) and os.environ.get("TERM") != "dumb"
        self.live = live
        self.now = now
        #: the status line's text, and whether it is on the screen now
        self.status = ""
        self.shown = False
        self.refreshed_at = float("-inf")

    def log(self, task: str, line: str) -> None:
        self._hide()
        self.out.write(f"[{task}] {line}\n")
        self.out.flush()
        self._show()

    def event(self, task: str, message: str) -> None:
        self._hide()
        self.err.write(f"offload: {task}: {message}\n")
        self.err.flush()
        self._show()

    def tick(self, run: Progressing) -> None:
        """``on_tick`` of :func:`offload.workflow.session.run_workflow`: refresh the status line."""
        if not self.live or self.now() - self.refreshed_at < REFRESH:
            return
        self.refreshed_at = self.now()
        self.status = progress_text(run.progress())[: self._width() - 1]
        self._hide()
        self._show()

    def close(self) -> None:
        """Erase the status line (the run ended); later lines are plain."""
        self._hide()
        self.status = ""

    def _hide(self) -> None:
        if self.shown:
            self.err.write(CLEAR)
            self.err.flush()
            self.shown = False

    def _show(self) -> None:
        if not self.live or not self.status:
            return
        self.err.write(self.status)
        self.err.flush()
        self.shown = True

    def _width(self) -> int:
        """The terminal's width: a longer status line would wrap, and could not be erased."""
        try:
            columns = os.get_terminal_size(self.err.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        return columns if columns > 1 else 80


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
