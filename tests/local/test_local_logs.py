"""Every line a local task prints reaches the poll's logs, in order, and none is dropped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import offload
from offload.testing import make_request, wait_for

#: The documented end of each piece of a line longer than 1 MiB but the last.
MARKER = " [offload: line over 1 MiB split; continues on the next line]"


@pytest.fixture
def executor() -> Iterator[offload.Executor]:
    with offload.Executor({"command_executor": {"type": "local"}}) as executor:
        yield executor


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return tmp_path


def run(executor: offload.Executor, project: Path, script: str) -> tuple[offload.Result, list[str]]:
    handle = executor.submit(make_request(project, script, {}), backend="local")
    return wait_for(executor, handle)


def joined(pieces: list[str]) -> str:
    """A split line put back together: every piece but the last ends with the marker."""
    assert all(piece.endswith(MARKER) for piece in pieces[:-1])
    assert not pieces[-1].endswith(MARKER)
    return "".join(piece.removesuffix(MARKER) for piece in pieces)


def test_output_far_larger_than_one_read_arrives_whole_and_in_order(executor: offload.Executor, project: Path) -> None:
    # about 3.5 MB, written before the first poll can read 1 MiB of it
    result, logs = run(executor, project, "seq 1 500000")
    assert result.ok
    assert logs == [str(n) for n in range(1, 500001)]


def test_a_line_longer_than_one_mebibyte_is_split_and_what_follows_still_arrives(executor: offload.Executor, project: Path) -> None:
    script = "echo before; head -c 2500000 /dev/zero | tr '\\0' x; echo; echo after"
    result, logs = run(executor, project, script)
    assert result.ok
    assert logs[0] == "before"
    assert logs[-1] == "after"
    pieces = logs[1:-1]
    assert len(pieces) == 3
    assert joined(pieces) == "x" * 2500000


def test_splitting_never_cuts_a_multibyte_character(executor: offload.Executor, project: Path) -> None:
    # '€' is three bytes: 1 MiB is not a multiple of three, so a blind cut would halve one
    script = "yes '€€€€€€€€' | head -n 50000 | tr -d '\\n'; echo; echo end"
    result, logs = run(executor, project, script)
    assert result.ok
    assert logs[-1] == "end"
    pieces = logs[:-1]
    assert len(pieces) == 2
    assert not any("\ufffd" in piece for piece in pieces)
    assert joined(pieces) == "€" * 400000


def test_a_last_line_without_a_newline_arrives(executor: offload.Executor, project: Path) -> None:
    result, logs = run(executor, project, "echo one; printf 'two\\r\\nthree\\rstill three\\nno newline'")
    assert result.ok
    assert logs == ["one", "two", "three\rstill three", "no newline"]


def test_collect_with_a_handle_that_has_not_read_the_log_still_works(executor: offload.Executor, project: Path) -> None:
    handle = executor.submit(make_request(project, "seq 1 500000; exit 3", {}), backend="local")
    result, logs = wait_for(executor, handle)
    assert len(logs) == 500000
    again = executor.collect(handle)  # the handle as submitted: its log cursor is at 0
    assert (again.state, again.exit_code) == (result.state, 3) == (offload.TaskState.FAILED, 3)


def test_the_task_counts_as_finished_only_once_its_log_is_drained(executor: offload.Executor, project: Path) -> None:
    handle = executor.submit(make_request(project, "seq 1 500000", {}), backend="local")
    seen: list[str] = []
    executor.wait(handle, on_log=seen.append, timeout=120)
    assert seen == [str(n) for n in range(1, 500001)]


def test_a_line_of_exactly_one_mebibyte_is_whole_and_one_byte_more_is_split(executor: offload.Executor, project: Path) -> None:
    script = "head -c 1048576 /dev/zero | tr '\\0' a; echo; head -c 1048577 /dev/zero | tr '\\0' b; echo; echo end"
    result, logs = run(executor, project, script)
    assert result.ok
    assert logs[0] == "a" * 1048576
    assert logs[1:3] == ["b" * 1048576 + MARKER, "b"]
    assert logs[3:] == ["end"]


def test_a_long_last_line_without_a_newline_is_split_too(executor: offload.Executor, project: Path) -> None:
    result, logs = run(executor, project, "head -c 1048577 /dev/zero | tr '\\0' c")
    assert result.ok
    assert logs == ["c" * 1048576 + MARKER, "c"]
