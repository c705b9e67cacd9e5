"""The kept task logs: the cap (head + marked cut + tail), the pieces written while a task
runs, a driver crash and resume, reading and following (offload.workflow.logstore)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.executor.errors import UsageError
from offload.workflow.cli_logs import Follower
from offload.workflow.logstore import MARKER_RE, Fold, LogStore, TaskLog, log_limit, log_path, marker, read_log

RUN = "20260101T000000-abcdef"


def numbered(count: int, width: int = 0) -> list[str]:
    return [f"line {i}".ljust(width, ".") for i in range(1, count + 1)]


def folded(lines: list[str], limit: int) -> list[str]:
    fold = Fold(limit)
    for line in lines:
        fold.add(line.encode() + b"\n")
    return [b.decode()[:-1] for b in fold.result()]


def expand(lines: list[str]) -> tuple[list[str], int]:
    """The lines that are not markers, and the count of lines the markers stand for."""
    kept, cut = [], 0
    for line in lines:
        match = MARKER_RE.fullmatch(line)
        if match:
            cut += int(match.group(1).replace(",", ""))
        else:
            kept.append(line)
    return kept, cut


def test_the_limit_is_a_setting_in_bytes_with_a_default_of_one_mib() -> None:
    assert log_limit({}) == 1024 * 1024
    assert log_limit({"OFFLOAD_LOG_LIMIT": "5000"}) == 5000
    assert log_limit({"OFFLOAD_LOG_LIMIT": "4M"}) == 4 * 1024 * 1024
    assert log_limit({"OFFLOAD_LOG_LIMIT": "64KiB"}) == 64 * 1024
    for bad in ("lots", "-1", "100", "12x", "1.5M"):
        with pytest.raises(UsageError, match="OFFLOAD_LOG_LIMIT"):
            log_limit({"OFFLOAD_LOG_LIMIT": bad})


def test_the_marker_says_how_many_lines_and_bytes_were_cut() -> None:
    assert marker(12345, int(3.2 * 1024 * 1024)) == "[offload: 12,345 lines (3.2 MiB) cut here]"
    assert marker(3, 40) == "[offload: 3 lines (40 B) cut here]"
    assert MARKER_RE.fullmatch(marker(7, None)) and MARKER_RE.fullmatch(marker(7, 5000))


def test_a_log_within_the_cap_is_kept_whole() -> None:
    lines = numbered(100)
    assert sum(len(line) + 1 for line in lines) <= 2000
    assert folded(lines, 2000) == lines


def test_a_log_over_the_cap_keeps_head_and_tail_around_one_marker() -> None:
    lines = numbered(1000)
    out = folded(lines, 1000)
    (at,) = [i for i, line in enumerate(out) if MARKER_RE.fullmatch(line)]
    head, tail = out[:at], out[at + 1 :]
    assert head == lines[: len(head)] and tail == lines[len(lines) - len(tail) :]
    assert sum(len(line) + 1 for line in head) <= 500 < sum(len(line) + 1 for line in lines[: len(head) + 1])
    cut = lines[len(head) : len(lines) - len(tail)]
    assert out[at] == marker(len(cut), sum(len(line) + 1 for line in cut))
    assert sum(len(line) + 1 for line in out) <= 1000
    assert sum(len(line) + 1 for line in out) > 1000 - len(lines[-len(tail) - 1]) - 1, "the tail takes what room is left"


def test_a_line_longer_than_the_room_left_is_cut_whole() -> None:
    lines = ["start", "x" * 5000, "end"]
    out = folded(lines, 1000)
    assert out == ["start", marker(1, 5001), "end"]


def write_all(path: str, lines: list[str], limit: int) -> None:
    log = TaskLog(path, limit)
    for line in lines:
        log.write(line)
    log.finish()


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=700), max_size=120),
    limit=st.sampled_from([256, 300, 1000, 4096]),
    crash_at=st.integers(min_value=0, max_value=120),
)
def test_streamed_pieces_fold_into_what_the_cap_keeps_even_across_a_driver_crash(sizes: list[int], limit: int, crash_at: int) -> None:
    lines = [f"{i}:" + "é" * (size // 2) for i, size in enumerate(sizes)]
    with tempfile.TemporaryDirectory() as tmp:
        path = log_path(tmp, RUN, "+t", 1)
        first = TaskLog(path, limit)
        for line in lines[:crash_at]:
            first.write(line)
        first.close()  # the driver died: never finished; a new driver goes on writing
        assert read_log(tmp, RUN, "+t", 1) == folded(lines[:crash_at], limit), "a running task's log reads as if it ended now"
        second = TaskLog(path, limit)
        for line in lines[crash_at:]:
            second.write(line)
        second.finish()
        assert sorted(os.listdir(os.path.dirname(path))) == ["t.1.log"], "only the final file is left"
        data = Path(path).read_bytes()
        assert data.decode("utf-8").splitlines() == folded(lines, limit) == read_log(tmp, RUN, "+t", 1)
        assert len(data) <= limit
        if sum(len(line.encode()) + 1 for line in lines) <= limit:
            assert data.decode("utf-8").splitlines() == lines


def test_a_line_cut_short_by_a_crash_is_ended_not_lost(tmp_path: Path) -> None:
    path = str(tmp_path / "t.1.log")
    log = TaskLog(path, 4096)
    log.write("whole")
    log.close()
    with open(path, "ab") as f:
        f.write(b"half a li")
    write_all(path, ["after"], 4096)
    assert Path(path).read_text().splitlines() == ["whole", "half a li", "after"]


def test_the_disk_holds_a_bounded_amount_while_a_long_log_streams(tmp_path: Path) -> None:
    path = str(tmp_path / "t.1.log")
    log = TaskLog(path, 10_000)
    for i in range(20_000):
        log.write(f"line {i} " + "x" * 40)
        if i % 1000 == 0:
            assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 3 * 10_000
    log.finish()
    assert Path(path).stat().st_size <= 10_000
    assert Path(path).read_text().splitlines()[-1].startswith("line 19999 ")


def test_a_follower_that_keeps_up_sees_every_line_once_and_in_order(tmp_path: Path) -> None:
    path = str(tmp_path / "t.1.log")
    log, follower = TaskLog(path, 1000), Follower(path)
    lines, seen = numbered(800), []
    for line in lines:
        log.write(line)
        seen += follower.poll()
    log.finish()
    seen += follower.poll()
    assert seen == lines


@settings(max_examples=40, deadline=None)
@given(count=st.integers(min_value=0, max_value=600), polls=st.lists(st.integers(min_value=0, max_value=600), max_size=6))
def test_a_follower_that_falls_behind_marks_what_it_missed(count: int, polls: list[int]) -> None:
    lines = numbered(count)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.1.log")
        log, follower = TaskLog(path, 1000), Follower(path)
        seen: list[str] = []
        for i, line in enumerate(lines):
            log.write(line)
            if i in polls:
                seen += follower.poll()
        log.finish()
        seen += follower.poll()
        assert follower.poll() == []
        kept, cut = expand(seen)
        assert len(kept) + cut == len(lines), seen
        assert len(set(kept)) == len(kept) and kept == [line for line in lines if line in set(kept)], "each line once, in order"
        if all(p >= count for p in polls):
            assert seen == Path(path).read_text().splitlines(), "one look at the end shows the final log"


def test_the_store_keeps_each_attempt_apart_and_splits_embedded_newlines(tmp_path: Path) -> None:
    attempts = {"+flow+a": 1}
    store = LogStore(str(tmp_path), RUN, attempts.get, limit=4096)
    store.write("+flow+a", "one\ntwo")
    store.write("+flow+b", "not running: not kept")
    store.finish("+flow+a", 1)
    attempts["+flow+a"] = 2
    store.write("+flow+a", "second attempt")
    store.finish("+flow+a", 2)
    store.finish("+flow+c", 1)  # printed nothing
    assert read_log(str(tmp_path), RUN, "+flow+a", 1) == ["one", "two"]
    assert read_log(str(tmp_path), RUN, "+flow+a", 2) == ["second attempt"]
    assert Path(log_path(str(tmp_path), RUN, "+flow+c", 1)).read_bytes() == b""
    assert not os.path.exists(log_path(str(tmp_path), RUN, "+flow+b", 1))


def test_a_log_that_cannot_be_written_is_reported_once_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / ".offload").write_text("a file where the directory should be")
    problems: list[str] = []
    store = LogStore(str(tmp_path), RUN, lambda name: 1, problems.append, limit=4096)
    store.write("+flow+a", "one")
    store.write("+flow+a", "two")
    store.finish("+flow+a", 1)
    assert len(problems) == 1 and "cannot keep the log of +flow+a (attempt 1)" in problems[0]
