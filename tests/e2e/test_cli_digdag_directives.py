"""Digdag's directives through ``offload run``: ``_retry`` with an interval, ``_parallel:
{limit: N}``, ``_background``, ``_check``; the ``py>``/``rb>`` settings as Digdag nests
them; the built-in params; and a resumed run that does not repeat generated subtasks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from flow_cli import log, run


def test_retry_waits_its_interval_doubling_when_exponential(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = 'python3 -c "import time; print(time.monotonic())" >> tries; test $(wc -l < tries) -ge 3'
    flow = f"+flaky:\n  _retry:\n    limit: 2\n    interval: 0.3\n    interval_type: exponential\n  sh>: {record}\n"
    code, _, err = run(project, capsys, flow)
    assert code == 0, err
    assert "failed (Command failed with code 1); retry 1 of 2 in 0.3s" in err
    assert "failed (Command failed with code 1); retry 2 of 2 in 0.6s" in err
    times = [float(t) for t in (project / "tries").read_text().split()]
    assert times[1] - times[0] >= 0.3 and times[2] - times[1] >= 0.6  # it waited, at least


def test_a_bad_retry_mapping_is_reported_with_its_key(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(project, capsys, "+a:\n  _retry: {limit: 2, interval_type: linear}\n  sh>: echo\n")
    assert code == 2
    assert "flow.dig: +flow+a: _retry.interval_type: must be constant or exponential, got 'linear'" in err


PROBE = "touch run.{n}; n=$(ls run.* | wc -l); echo $n >> seen; sleep 0.3; rm run.{n}"


def test_parallel_limit_runs_at_most_n_children_at_once(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    children = "".join(f"  +t{n}:\n    sh>: {PROBE.format(n=n)}\n" for n in range(5))
    code, _, err = run(project, capsys, f"+batch:\n  _parallel:\n    limit: 2\n{children}")
    assert code == 0, err
    seen = [int(n) for n in (project / "seen").read_text().split()]
    assert len(seen) == 5 and max(seen) <= 2


def test_a_background_task_runs_alongside_the_tasks_before_it_and_the_next_waits(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # +side waits for +slow's file, so it must run alongside it; +after must see both done
    wait = (
        "touch {me}.started; i=0; while [ ! -f {other}.started ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; test -f {other}.started && touch {me}.done"
    )
    flow = (
        f"+slow:\n  sh>: {wait.format(me='slow', other='side')}\n"
        f"+side:\n  _background: true\n  sh>: {wait.format(me='side', other='slow')}\n"
        "+after:\n  sh>: test -f slow.done && test -f side.done && echo both\n"
    )
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    assert log(out, "+flow+after") == ["both"]


def test_check_runs_after_the_task_and_its_failure_fails_the_task(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = "+load:\n  sh>: echo 3 > rows\n  _check:\n    sh>: test $(cat rows) -gt 5\n+next:\n  sh>: touch next\n"
    code, _, err = run(project, capsys, flow)
    assert code == 1
    assert "+flow+load^check: failed: Command failed with code 1" in err
    assert not (project / "next").exists()


def test_python_and_ruby_settings_as_digdag_nests_them_stay_params(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tasks.py").write_text("import sys\n\ndef show(python=None):\n    print(sys.flags.optimize, python)\n")
    flow = f"_export:\n  py:\n    python: [{sys.executable}, -O]\n+p:\n  py>: tasks.show\n  python: [{sys.executable}, -O]\n+q:\n  py>: tasks.show\n"
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    assert log(out, "+flow+p") == [f"1 ['{sys.executable}', '-O']"]
    assert log(out, "+flow+q") == ["1 None"]  # from the nested py: section; no top-level python param


def test_digdag_built_ins_exist_and_the_unknowable_are_reported_before_the_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = (
        "timezone: Asia/Tokyo\n+show:\n  sh>: echo '${session_local_time}|${session_tz_offset}|${session_uuid}|${attempt_id}|${last_executed_session_date}'\n"
    )
    code, out, err = run(project, capsys, flow, "--session", "2026-01-30T00:00:00+09:00")
    assert code == 0, err
    local, offset, uuid, attempt, last = log(out, "+flow+show")[0].split("|")
    assert (local, offset, last) == ("2026-01-30 00:00:00", "+0900", "")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", uuid)
    assert attempt.endswith(".1")
    code, out, err = run(project, capsys, flow, "--rerun", "--session", "2026-01-31T00:00:00+09:00")
    assert code == 0, err
    assert log(out, "+flow+show")[0].split("|")[4] == "2026-01-30"  # the session before this one

    code, _, err = run(project, capsys, "+first:\n  sh>: touch ran\n+later:\n  sh>: echo ${next_session_date}\n", "--rerun")
    assert code == 2
    assert "+flow+later: sh>: ${next_session_date}: Digdag's built-in 'next_session_date' is set by Digdag's scheduler" in err
    assert not (project / "ran").exists()
    code, _, err = run(project, capsys, "+later:\n  sh>: echo ${next_session_date}\n", "--rerun", "-p", "next_session_date=2026-02-01")
    assert code == 0, err


GENERATOR = """\
import digdag

def gen():
    print("generator ran")
    digdag.env.add_subtask({"sh>": "echo one >> ran"})
    digdag.env.add_subtask({"sh>": "echo two >> ran; test -f fixed"})
"""


def test_a_resumed_run_does_not_repeat_the_generator_or_its_finished_subtasks(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tasks.py").write_text(GENERATOR)
    code, out, _ = run(project, capsys, "+g:\n  py>: tasks.gen\n")
    assert code == 1
    assert log(out, "+flow+g") == ["generator ran"]
    (project / "fixed").touch()
    code, out, err = run(project, capsys, "+g:\n  py>: tasks.gen\n")
    assert code == 0, err
    assert log(out, "+flow+g") == []
    assert (project / "ran").read_text() == "one\ntwo\ntwo\n"


def test_after_orders_children_of_a_parallel_group(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = (
        "+g:\n  _parallel: true\n"
        "  +a:\n    sh>: sleep 0.3; touch a\n"
        "  +b:\n    sh>: touch b\n"
        "  +c:\n    _after: [+a, +b]\n    sh>: test -f a && test -f b && echo after both\n"
    )
    code, out, err = run(project, capsys, flow)
    assert code == 0, err
    assert log(out, "+flow+g+c") == ["after both"]
