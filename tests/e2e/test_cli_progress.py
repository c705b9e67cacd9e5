"""The live status line of ``offload run``: on a terminal it stays under the log lines and
events and is gone at the end; anywhere else not a single control character is written."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import attrs
import pytest
from test_cli_crash_resume import OFFLOAD

from offload.testing import wait_for_line
from offload.testing.contract import WAIT_LIMIT
from offload.workflow.report import REFRESH, Console
from offload.workflow.runner import Progress

FLOW = """\
+first:
  sh>: echo first-line
+slow:
  sh>: |
    echo slow is running
    while [ ! -f release ]; do sleep 0.05; done
    echo slow done
+last:
  sh>: echo last-line
"""

#: The status line while +slow runs: +first done, +last not started.
WHILE_SLOW = re.compile(r"offload: 1 running \(local 1\), 1 done, 0 failed, 1 waiting; \d+:\d\d elapsed")
LOG_LINES = ["[+flow+first] first-line", "[+flow+slow] slow is running", "[+flow+slow] slow done", "[+flow+last] last-line"]
EVENTS = ["offload: +flow+slow: started on local", "offload: +flow+slow: succeeded", "offload: +flow+last: succeeded"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.dig").write_text(FLOW)
    return tmp_path


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OFFLOAD_DISABLE_PLUGINS": "docker ecs", **extra}


class PtyRun:
    """``offload run`` with its stdout and stderr on one pseudo-terminal, as in a shell."""

    def __init__(self, project: Path, term: str = "xterm") -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
        self.proc = subprocess.Popen([*OFFLOAD, "run", "flow.dig"], cwd=project, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env(TERM=term))
        os.close(slave)
        self.raw = b""

    def read_until(self, done: re.Pattern[str] | None) -> str:
        """Read the terminal until ``done`` matches what was written (``None``: until the end)."""
        deadline = time.monotonic() + WAIT_LIMIT
        while time.monotonic() < deadline:
            if done is not None and done.search(self.text):
                return self.text
            ready, _, _ = select.select([self.master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the other end closed
                chunk = b""
            if not chunk:
                if done is None:
                    return self.text
                break
            self.raw += chunk
        self.proc.kill()
        pytest.fail(f"never saw {done.pattern if done else 'the end'}; output:\n{self.text!r}")

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        os.close(self.master)


def screen(raw: str) -> tuple[list[str], str]:
    """What a terminal shows: the lines scrolled past, and the line the cursor is on.
    Understands ``\\r``, ``\\n`` and erase-to-end-of-line; any other escape fails the test."""
    lines: list[str] = []
    line: list[str] = []
    col = 0
    i = 0
    while i < len(raw):
        if raw.startswith("\x1b[K", i):
            del line[col:]
            i += 3
            continue
        char = raw[i]
        assert char != "\x1b", f"unexpected escape sequence {raw[i : i + 10]!r}"
        if char == "\r":
            col = 0
        elif char == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            line[col : col + 1] = [char]
            col += 1
        i += 1
    return lines, "".join(line)


def test_on_a_terminal_the_status_line_stays_under_the_log_lines(project: Path) -> None:
    run = PtyRun(project)
    try:
        run.read_until(WHILE_SLOW)
        (project / "release").write_text("")
        raw = run.read_until(None)
        assert run.proc.wait(60) == 0, raw
    finally:
        run.close()
    assert "\r\x1b[K" in raw  # the status line is erased before what is printed over it
    lines, cursor_line = screen(raw)
    for line in LOG_LINES + EVENTS:
        assert line in lines, (line, lines)  # whole lines, nothing mixed into them
    assert not [line for line in lines if "elapsed" in line], lines  # the status line never scrolls away with the output
    assert cursor_line == ""  # and it is gone at the end
    assert lines[-1].startswith("offload: run: succeeded: run ")
    assert [line.split()[0] for line in lines if line.startswith("+flow+")] == ["+flow+first", "+flow+slow", "+flow+last"]  # the summary


@pytest.mark.parametrize("how", ["pipes", "dumb terminal"])
def test_elsewhere_only_plain_lines_are_written(project: Path, how: str) -> None:
    if how == "pipes":
        proc = subprocess.Popen([*OFFLOAD, "run", "flow.dig"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())
        seen = wait_for_line(proc, "slow is running")  # the run ticked with a task running
        (project / "release").write_text("")
        rest, _ = proc.communicate(timeout=120)
        output = "".join(seen) + rest
        assert proc.returncode == 0, output
    else:
        run = PtyRun(project, term="dumb")
        try:
            run.read_until(re.compile(re.escape("slow is running")))
            (project / "release").write_text("")
            output = run.read_until(None).replace("\r\n", "\n")  # the terminal's own line ends
            assert run.proc.wait(60) == 0, output
        finally:
            run.close()
    assert [c for c in output if c != "\n" and (c < " " or c == "\x7f")] == [], repr(output)
    assert "elapsed" not in output and "waiting;" not in output
    lines = output.splitlines()
    for line in LOG_LINES + EVENTS:
        assert line in lines


@attrs.define
class FakeRun:
    progress_calls: int = 0

    def progress(self) -> Progress:
        self.progress_calls += 1
        return Progress({"running": 2, "succeeded": 3, "failed": 1, "lost": 1, "pending": 4, "submitting": 1}, {"local": 1, "docker": 1}, 3725.0)


def test_the_status_line_is_refreshed_at_most_every_refresh_period() -> None:
    """Driven by a clock the test sets: ticks closer than REFRESH do not redraw."""
    now = [100.0]
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, live=True, now=lambda: now[0])
    run = FakeRun()
    console.tick(run)
    full = "offload: 2 running (docker 1, local 1), 3 done, 2 failed, 5 waiting; 1:02:05 elapsed"
    status = full[:79]  # not a terminal: 80 columns, and one left free so that the line never wraps
    assert err.getvalue() == status
    for _ in range(10):
        now[0] += REFRESH / 4
        console.tick(run)
    assert run.progress_calls == 3  # at 100, 100 + REFRESH and 100 + 2 REFRESH
    console.log("+t", "a line")
    console.event("+t", "an event")
    assert out.getvalue() == "[+t] a line\n"
    assert err.getvalue().endswith(f"{status}\r\x1b[K{status}\r\x1b[Koffload: +t: an event\n{status}")
    console.close()
    assert err.getvalue().endswith(f"an event\n{status}\r\x1b[K")
    console.event("run", "done")
    assert err.getvalue().endswith("\r\x1b[Koffload: run: done\n")


def test_a_console_that_is_not_live_writes_plain_lines_only() -> None:
    out, err = io.StringIO(), io.StringIO()  # not terminals
    console = Console(out, err)
    assert not console.live
    console.tick(FakeRun())
    console.log("+t", "a line")
    console.event("+t", "an event")
    console.close()
    assert (out.getvalue(), err.getvalue()) == ("[+t] a line\n", "offload: +t: an event\n")
