"""``offload run`` with the local backend: many tasks at once, large outputs, real durations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

OFFLOAD = [sys.executable, "-m", "offload.workflow.cli", "run", "flow.dig"]
MARKER = " [offload: line over 1 MiB split; continues on the next line]"

#: Each task says it started, then blocks until the test closes the only writer of
#: ``release.fifo``: every task of the group is running at the same time, without sleeps.
BARRIER_TASK = """\
  +t{n}:
    sh>: |
      exec 3< release.fifo
      echo x >> started.txt
      read line <&3 || true
      echo done {n}
"""


def limit_descriptors(soft: int) -> None:
    """Run in the driver before exec: lower its soft RLIMIT_NOFILE."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


class Driver:
    """``offload run`` in the background, its output in files (a pipe could fill up and block it)."""

    def __init__(self, project: Path, fd_limit: int | None = None) -> None:
        self.out, self.err = project / "stdout.txt", project / "stderr.txt"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                OFFLOAD,
                cwd=project,
                stdout=out,
                stderr=err,
                env={**os.environ, "OFFLOAD_DISABLE_PLUGINS": "docker ecs"},
                preexec_fn=None if fd_limit is None else lambda: limit_descriptors(fd_limit),
            )

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def finish(self, limit: float = 600) -> str:
        try:
            self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"offload run did not finish in {limit} s:\n{self.output()[-3000:]}")
        assert self.proc.returncode == 0, self.output()[-3000:]
        return self.out.read_text()


@pytest.fixture
def release(tmp_path: Path) -> Iterator[int]:
    """The writer end of the barrier; closing it lets every task go on."""
    os.mkfifo(tmp_path / "release.fifo")
    fd = os.open(tmp_path / "release.fifo", os.O_RDWR)  # Linux: does not block, and keeps readers blocked
    yield fd
    try:
        os.close(fd)
    except OSError:
        pass


def run_parallel(project: Path, release: int, count: int, fd_limit: int) -> str:
    tasks = "".join(BARRIER_TASK.format(n=n) for n in range(count))
    (project / "flow.dig").write_text(f"+many:\n  _parallel: true\n{tasks}")
    driver = Driver(project, fd_limit=fd_limit)
    started = project / "started.txt"
    deadline = time.monotonic() + 600
    while not started.exists() or started.stat().st_size < 2 * count:
        if driver.proc.poll() is not None or time.monotonic() > deadline:
            driver.proc.kill()
            pytest.fail(f"not all {count} tasks started:\n{driver.output()[-3000:]}")
        time.sleep(0.2)
    os.close(release)  # every task is running now: let them all finish
    out = driver.finish()
    for n in range(count):
        assert f"[+flow+many+t{n}] done {n}\n" in out
    assert out.count(" succeeded ") == count
    return out


@pytest.mark.slow
def test_two_thousand_parallel_tasks_complete(tmp_path: Path, release: int) -> None:
    # above 1,024 descriptors, select() failed with "filedescriptor out of range"
    run_parallel(tmp_path, release, 2000, fd_limit=4096)


def test_many_parallel_tasks_complete_with_few_file_descriptors(tmp_path: Path, release: int) -> None:
    run_parallel(tmp_path, release, 300, fd_limit=64)


def test_every_line_reaches_the_console_in_order(tmp_path: Path) -> None:
    flow = """\
+big:
  sh>: |
    seq 1 300000
    head -c 2500000 /dev/zero | tr '\\0' x
    echo
    echo last
"""
    (tmp_path / "flow.dig").write_text(flow)
    out = Driver(tmp_path).finish()
    lines = [line.removeprefix("[+flow+big] ") for line in out.splitlines() if line.startswith("[+flow+big] ")]
    assert lines[:300000] == [str(n) for n in range(1, 300001)]
    assert lines[-1] == "last"
    pieces = lines[300000:-1]
    assert len(pieces) == 3 and all(piece.endswith(MARKER) for piece in pieces[:-1])
    assert "".join(piece.removesuffix(MARKER) for piece in pieces) == "x" * 2500000


def test_inline_shell_tasks_have_a_real_duration(tmp_path: Path) -> None:
    tasks = "".join(f"+t{n}:\n  sh>: echo {n}\n" for n in range(5))
    (tmp_path / "flow.dig").write_text(tasks)
    out = Driver(tmp_path).finish()
    durations = re.findall(r"^\+flow\+t\d\s+local\s+succeeded\s+0\s+(\S+)s$", out, re.MULTILINE)
    assert len(durations) == 5, out
    assert all(float(d) > 0 for d in durations), out
