"""``offload logs``: every task's log is kept under .offload/ and printed, followed live
from a second process, capped with head and tail; bad input is one message, exit 2."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from offload.testing import wait_for_line
from offload.workflow.cli import main
from offload.workflow.logstore import MARKER_RE, log_path, read_log

OFFLOAD = [sys.executable, "-m", "offload.workflow.cli"]

FLOW = """\
+prepare:
  sh>: |
    echo preparing
    echo "ünïcode ok"
+say:
  echo>: said ${task_name}
+step:
  sh>: printf 'one\\ntwo\\n\\nfour\\n'
"""

WAITING = """\
+wait:
  sh>: |
    echo first line
    while [ ! -f go ]; do sleep 0.05; done
    echo last line
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "local")
    monkeypatch.delenv("OFFLOAD_LOG_LIMIT", raising=False)
    return tmp_path


def run_flow(project: Path, capsys: pytest.CaptureFixture[str], text: str, expect: int = 0) -> str:
    (project / "flow.dig").write_text(text)
    code = main(["run", str(project / "flow.dig")])
    captured = capsys.readouterr()
    assert code == expect, captured.out + captured.err
    match = re.search(r"offload: run: starting run (\S+) of flow", captured.err)
    assert match is not None, captured.err
    return match.group(1)


def logs(project: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["logs", "--project", str(project), *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_a_finished_tasks_log_is_printed_by_its_name_or_the_end_of_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = run_flow(project, capsys, FLOW)
    for name in ("step", "+step", "+flow+step"):
        assert logs(project, capsys, name) == (0, ["one", "two", "", "four"], "")
    assert logs(project, capsys, "prepare", "--run", run_id, "--attempt", "1") == (0, ["preparing", "ünïcode ok"], "")
    # the contract others read: a plain UTF-8 file per task attempt
    path = Path(log_path(str(project), run_id, "+flow+prepare", 1))
    assert path == project / ".offload" / "logs" / run_id / "flow.prepare.1.log"
    assert path.read_text(encoding="utf-8") == "preparing\nünïcode ok\n"
    assert read_log(str(project), run_id, "+flow+say", 1) == ["said +flow+say"], "engine operators log too"


def test_without_a_task_every_task_is_printed_in_the_order_it_started(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_flow(project, capsys, FLOW)
    code, out, _ = logs(project, capsys)
    assert code == 0
    assert [line.split(" ", 1)[0] for line in out] == ["[+flow+prepare]"] * 2 + ["[+flow+say]"] + ["[+flow+step]"] * 4
    assert out[0] == "[+flow+prepare] preparing" and out[-1] == "[+flow+step] four"


def test_the_latest_run_is_the_default_and_older_ones_stay_readable(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_flow(project, capsys, "+step:\n  sh>: echo first run\n")
    run_flow(project, capsys, "+step:\n  sh>: echo second run\n")
    assert logs(project, capsys, "step")[1] == ["second run"]
    assert logs(project, capsys, "step", "--run", first)[1] == ["first run"]


def test_each_attempt_of_a_retried_task_has_its_log(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flaky = "+flaky:\n  _retry: 2\n  sh>: |\n    n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count\n    echo attempt $n\n    [ $n -ge 3 ]\n"
    run_flow(project, capsys, flaky)
    assert logs(project, capsys, "flaky")[1] == ["attempt 3"]
    for attempt in (1, 2, 3):
        assert logs(project, capsys, "flaky", "--attempt", str(attempt))[1] == [f"attempt {attempt}"]
    assert logs(project, capsys)[1] == ["[+flow+flaky] attempt 3"], "without TASK: the latest attempt of each"


def test_a_long_log_keeps_its_head_and_tail_with_the_cut_marked(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_LOG_LIMIT", "2000")
    run_id = run_flow(project, capsys, "+long:\n  sh>: seq 1 50000\n")
    code, out, _ = logs(project, capsys, "long")
    assert code == 0
    (at,) = [i for i, line in enumerate(out) if MARKER_RE.fullmatch(line)]
    head, tail = [int(n) for n in out[:at]], [int(n) for n in out[at + 1 :]]
    assert head == list(range(1, len(head) + 1)) and len(head) > 100
    assert tail == list(range(50001 - len(tail), 50001)) and len(tail) > 100
    match = MARKER_RE.fullmatch(out[at])
    assert match is not None
    cut = int(match.group(1).replace(",", ""))
    assert len(head) + cut + len(tail) == 50000
    assert out[at].endswith(" KiB) cut here]")
    path = Path(log_path(str(project), run_id, "+flow+long", 1))
    assert path.stat().st_size <= 2000
    assert os.listdir(path.parent) == [path.name], "the pieces written while it ran are folded in"


def start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*OFFLOAD, *args], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OFFLOAD_EXECUTOR": "local"}
    )


def test_follow_from_a_second_process_shows_lines_live_and_ends_with_the_task(project: Path) -> None:
    (project / "flow.dig").write_text(WAITING)
    driver = start(project, "run", "flow.dig")
    procs = [driver]
    try:
        wait_for_line(driver, "first line")  # the driver has it: it is kept
        one = start(project, "logs", "wait", "--follow")
        every = start(project, "logs", "--follow")
        procs += [one, every]
        wait_for_line(one, "first line")
        wait_for_line(every, "[+flow+wait] first line")
        assert one.poll() is None and every.poll() is None, "they follow while the task runs"
        (project / "go").write_text("")
        rest_one, _ = one.communicate(timeout=60)
        rest_every, _ = every.communicate(timeout=60)
        assert one.returncode == 0 and rest_one == "last line\n"
        assert every.returncode == 0 and rest_every == "[+flow+wait] last line\n"
        driver.communicate(timeout=60)
        assert driver.returncode == 0
    finally:
        (project / "go").write_text("")
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_resumed_run_appends_to_the_same_attempts_log_and_follow_stops_without_a_driver(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flow.dig").write_text(WAITING)
    driver = start(project, "run", "flow.dig")
    wait_for_line(driver, "first line")
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    code, out, err = logs(project, capsys, "wait", "--follow")
    assert code == 1 and out == ["first line"]
    assert "has not ended, but no offload run drives it; run the workflow again to resume it" in err
    (project / "go").write_text("")
    assert main(["run", str(project / "flow.dig")]) == 0
    capsys.readouterr()
    assert logs(project, capsys, "wait") == (0, ["first line", "last line"], "")
    assert logs(project, capsys, "wait", "--follow") == (0, ["first line", "last line"], ""), "a finished task: printed, then done"


AMBIGUOUS = """\
+a:
  +step:
    echo>: a
+b:
  +step:
    echo>: b
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["step"], "task 'step' is ambiguous in run "),
        (["nope"], "no task 'nope' in run "),
        (["--run", "19990101T000000-000000"], "--run 19990101T000000-000000: no such run in "),
        (["a+step", "--attempt", "2"], "task +flow+a+step of run "),
        (["--attempt", "1"], "--attempt needs a TASK"),
    ],
)
def test_bad_input_is_one_message_exit_2_and_the_journal_is_untouched(project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    run_flow(project, capsys, AMBIGUOUS)
    state = project / ".offload"
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    assert logs(project, capsys, "a+step")[:2] == (0, ["a"])
    code, out, err = logs(project, capsys, *args)
    assert code == 2 and out == []
    assert err.startswith("offload: error: ") and message in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()} == before


def test_no_journal_is_one_message_exit_2_and_creates_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = logs(project, capsys, "step")
    assert code == 2 and out == []
    assert f"no journal at {project / '.offload' / 'journal.sqlite'}" in err and "Traceback" not in err
    assert list(project.iterdir()) == []


def test_a_bad_log_limit_stops_the_run_before_anything_is_journaled(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_LOG_LIMIT", "lots")
    (project / "flow.dig").write_text("+a:\n  sh>: touch ran\n")
    assert main(["run", str(project / "flow.dig")]) == 2
    assert "OFFLOAD_LOG_LIMIT" in capsys.readouterr().err
    assert not (project / "ran").exists()
    assert not (project / ".offload" / "journal.sqlite").exists()
