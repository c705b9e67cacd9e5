"""Container logs: every line, whole and in order, without engine timestamps, in bounded memory."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

import offload
from offload import from_json, to_json
from offload.testing import make_request, wait_for
from offload_docker import follow
from offload_docker.logs import MAX_LINE, SPLIT_MARKER

Make = Callable[..., offload.Executor]


def joined(pieces: list[str]) -> str:
    """A split line put back together; every piece but the last carries the marker."""
    assert all(p.endswith(SPLIT_MARKER) for p in pieces[:-1]) and not pieces[-1].endswith(SPLIT_MARKER)
    return "".join(p.removesuffix(SPLIT_MARKER) for p in pieces)


def test_long_lines_arrive_whole_or_split_by_offloads_rule_never_with_timestamps(docker_executor: Make, project: Path, image: str) -> None:
    script = (
        "echo before; head -c 100000 /dev/zero | tr '\\0' a; echo; "
        "head -c 2000000 /dev/zero | tr '\\0' b; echo; "
        "python3 -c \"print('\\u00e9' * 700000)\"; echo after"
    )
    executor = docker_executor()
    result, logs = wait_for(executor, executor.submit(make_request(project, script, {"docker": {"image": image}}), backend="docker"))
    assert result.ok
    assert logs[0] == "before" and logs[-1] == "after"
    assert logs[1] == "a" * 100_000, "a line over the engine's 16 KiB arrives whole"
    b_pieces = [line for line in logs if line.startswith("bbb")]
    assert joined(b_pieces) == "b" * 2_000_000
    assert len(b_pieces) == 2 and all(len(p.removesuffix(SPLIT_MARKER).encode()) <= MAX_LINE for p in b_pieces)
    e_pieces = [line for line in logs if line.startswith("\u00e9")]
    assert joined(e_pieces) == "\u00e9" * 700_000, "a piece never ends inside a UTF-8 character"
    assert logs == ["before", "a" * 100_000, *b_pieces, *e_pieces, "after"]


def test_the_last_line_arrives_without_a_newline(docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    result, logs = wait_for(executor, executor.submit(make_request(project, "echo one; printf 'no newline'", {"docker": {"image": image}}), backend="docker"))
    assert result.ok
    assert logs == ["one", "no newline"]


def test_the_last_line_comes_even_when_the_engine_ends_the_follow_reply_without_it(
    docker_executor: Make, project: Path, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moby #43860: a follow reply may end before the last message when it has no newline.

    The engine's bug is played by cutting the last frame off every follow reply; the
    plain read offload makes once the container has stopped must bring the line back."""
    real_body = follow.body

    def body_without_last_frame(response: Any) -> Iterator[bytes]:
        data = b"".join(real_body(response))
        if "follow=1" not in str(response.url):
            yield data
            return
        frames, pos = [], 0
        while pos + 8 <= len(data):
            end = pos + 8 + int.from_bytes(data[pos + 4 : pos + 8], "big")
            frames.append(data[pos:end])
            pos = end
        yield b"".join(frames[:-1])

    monkeypatch.setattr(follow, "body", body_without_last_frame)
    executor = docker_executor()
    result, logs = wait_for(executor, executor.submit(make_request(project, "echo one; printf 'no newline'", {"docker": {"image": image}}), backend="docker"))
    assert result.ok
    assert logs == ["one", "no newline"]


SLOW_LONG_LINE = (
    "echo line1; head -c 200000 /dev/zero | tr '\\0' x; echo err1 >&2; "
    "while [ ! -e \"$OFFLOAD_IO_DIR/go\" ]; do sleep 0.1; done; echo err2 >&2; echo y; echo line3"
)


def test_a_driver_that_restarts_in_the_middle_of_a_long_line_loses_and_repeats_nothing(docker_executor: Make, project: Path, image: str) -> None:
    request = make_request(project, SLOW_LONG_LINE, {"docker": {"image": image}})
    first = docker_executor()
    handle = first.submit(request, backend="docker")
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while "err1" not in seen:  # the long line has begun (its first 16 KiB frames are logged)
        assert time.monotonic() < deadline, seen
        (status,) = first.poll([handle])
        handle = status.handle or handle
        seen += status.logs
        time.sleep(0.05)
    saved = to_json(handle)
    first.close()
    Path(request.io_path, "go").touch()
    result, rest = wait_for(docker_executor(), from_json(saved, offload.Handle))
    assert result.ok
    lines = seen + rest
    assert [line for line in lines if not line.startswith("err")] == ["line1", "x" * 200_000 + "y", "line3"]
    assert [line for line in lines if line.startswith("err")] == ["err1", "err2"]


def test_many_lines_from_both_streams_all_arrive_in_order(docker_executor: Make, project: Path, image: str) -> None:
    script = "i=0; while [ $i -lt 20000 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done"
    executor = docker_executor()
    result, logs = wait_for(executor, executor.submit(make_request(project, script, {"docker": {"image": image}}), backend="docker"))
    assert result.ok
    assert [line for line in logs if line.startswith("out")] == [f"out {i}" for i in range(20000)]
    assert [line for line in logs if line.startswith("err")] == [f"err {i}" for i in range(20000)]


BIG_FLOW = """
_export:
  docker:
    image: {image}
+big:
  sh>: python3 -c "import sys; [sys.stdout.write(f'{{i:08d}} ' + 'x' * 991 + chr(10)) for i in range({lines})]"
"""


def own_peak_kib(pid: int) -> int:
    """The peak resident memory of ``pid``'s own program (``VmHWM``), 0 once it has exited.

    Not ``ru_maxrss`` from ``wait4``: Linux carries the high-water mark of the forked
    parent (this pytest process, large late in a suite) into the child's at exec.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_a_large_output_reaches_the_console_in_order_in_bounded_driver_memory(tmp_path: Path, image: str, engine: docker.DockerClient) -> None:
    lines = 80_000  # 80 MB of output
    (tmp_path / "big.dig").write_text(BIG_FLOW.format(image=image, lines=lines))
    driver = subprocess.Popen([sys.executable, "-m", "offload.workflow.cli", "run", "big.dig"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert driver.stdout is not None and driver.stderr is not None
    expected, peak_kib = 0, 0
    for raw in driver.stdout:
        if not raw.startswith(b"[+big+big] "):
            continue  # the summary table at the end
        assert raw == b"[+big+big] %08d %s\n" % (expected, b"x" * 991), f"line {expected} out of order or damaged"
        expected += 1
        if expected % 5_000 == 0 or expected == lines:
            peak_kib = max(peak_kib, own_peak_kib(driver.pid))
    errors = driver.stderr.read().decode()
    driver.wait(60)
    assert driver.returncode == 0, errors
    assert expected == lines, "every line reached the console"
    assert peak_kib > 0, "the driver's memory was sampled while it ran"
    peak_mib = peak_kib / 1024
    assert peak_mib < 120, f"the driver held the log in memory: {peak_mib:.0f} MiB for 80 MB of output"
