"""``offload report``: a real run's timeline, written as one HTML file and looked at in a real
headless Chromium (Debian's ``chromium``; scripts/setup_chromium.sh installs it).

Chromium gets no network: the page must reference nothing (asserted), DNS is mapped to
nowhere, and background services are off. Without chromium these tests fail in CI and are
skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chromium_page import Node, colours, parse_html, png_pixels, rendered_dom, screenshot

from offload.executor.models import Handle, Result, TaskState
from offload.testing import wait_for_line
from offload.workflow.cli import main
from offload.workflow.journal import Journal
from offload.workflow.taskkeys import task_key

SCRIPT_LINE = "<script>document.title='pwned'</script>"

FLOW = """\
+par:
  _parallel: true
  +a:
    sh>: sleep 0.3; echo a done
  +b:
    sh>: sleep 0.2; echo b done
+flaky:
  _retry: 1
  sh>: |
    n=$(cat tries 2>/dev/null || echo 0)
    echo $((n + 1)) > tries
    echo "flaky try $n"
    test "$n" -ge 1
+bad:
  sh>: sh bad.sh
"""

BAD_SH = f"""\
for i in $(seq 1 30); do echo "log line $i"; done
echo "{SCRIPT_LINE}"
exit 3
"""


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "local")
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", "docker ecs kubernetes")
    root = tmp_path / "project"
    root.mkdir()
    return root


def journal_rows(project: Path, run_id: str) -> dict[tuple[str, int], dict[str, object]]:
    db = sqlite3.connect(f"file:{project / '.offload' / 'journal.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT task_name, attempt, state, backend, result FROM tasks WHERE run_id = ?", (run_id,)).fetchall()
    db.close()
    return {(n, a): {"state": s, "backend": b, "result": json.loads(r) if r else None} for n, a, s, b, r in rows}


def bars(dom: Node) -> list[Node]:
    return [n for n in dom.walk() if "a" in n.classes and "data-task" in n.attrs]


def no_network_references(page: str) -> None:
    """Nothing in ``page`` makes a browser fetch anything: no URL, no element that loads."""
    assert not re.search(r"(?i)https?://", page), "the report holds a http(s) address"
    dom = parse_html(page)
    loaders = [n.tag for n in dom.walk() if n.tag in {"script", "link", "img", "iframe", "object", "embed", "video", "audio", "source", "base", "form"}]
    assert not loaders, f"the report has elements that load: {loaders}"
    for node in dom.walk():
        for name, value in node.attrs.items():
            if name in {"href", "src", "srcset", "action", "formaction", "poster", "data", "background"}:
                assert value.startswith("#"), f"<{node.tag} {name}={value!r}>"
    for style in dom.find_all("style"):
        assert not re.search(r"(?i)url\(|@import|@font-face", style.text), "the style sheet loads something"
    csp = dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp


def report(project: Path, out: Path, *args: str) -> None:
    code = main(["report", *args, "--project", str(project), "-o", str(out)])
    assert code == 0
    assert out.is_file()


# --- tests ----------------------------------------------------------------------------------


def test_report_of_a_real_run_in_chromium(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flow.dig").write_text(FLOW)
    (project / "bad.sh").write_text(BAD_SH)
    assert main(["run", str(project / "flow.dig")]) == 1
    out = capsys.readouterr()
    run_id = re.search(r"run (\S+) of flow", out.err).group(1)  # type: ignore[union-attr]
    log = project / ".offload" / "logs" / run_id / f"{task_key('+flow+bad')}.1.log"
    assert log.is_file(), f"the driver kept no log at {log}"
    assert SCRIPT_LINE in log.read_text()
    journal = project / ".offload" / "journal.sqlite"
    before = journal.read_bytes()

    page_path = tmp_path / "run.html"
    report(project, page_path)
    assert journal.read_bytes() == before, "offload report changed the journal"
    page = page_path.read_text(encoding="utf-8")
    no_network_references(page)
    assert SCRIPT_LINE not in page  # escaped, never as it is
    written_title = parse_html(page).find("title").text
    assert run_id in written_title and "pwned" not in written_title

    dom = rendered_dom(tmp_path, page_path)
    assert dom.find("title").text == written_title, "a script ran in the report"
    assert not dom.find_all("script"), "the report has a script element"
    assert dom.find(id="run-id").text == run_id
    assert dom.find(id="run-state").text == "failed"
    assert "3 succeeded" in dom.find(id="counts").text and "1 failed" in dom.find(id="counts").text

    # a bar per task attempt, in the local backend's group, named after its task
    rows = journal_rows(project, run_id)
    assert sorted(rows) == [("+flow+bad", 1), ("+flow+flaky", 1), ("+flow+flaky", 2), ("+flow+par+a", 1), ("+flow+par+b", 1)]
    drawn = {(b.attrs["data-task"], int(b.attrs["data-attempt"])): b for b in bars(dom)}
    assert sorted(drawn) == sorted(rows)
    group = dom.find("section", cls="group", data_backend="local")
    assert len(bars(group)) == len(rows)
    expected_state = {("+flow+bad", 1): "failed", ("+flow+flaky", 1): "failed", ("+flow+flaky", 2): "succeeded"}
    for key, bar in drawn.items():
        assert bar.attrs["data-state"] == expected_state.get(key, "succeeded"), key
        assert key[0] in bar.attrs["title"] and f"#{key[1]}" in bar.attrs["title"]
        kinds = [next(iter(seg.classes - {"seg"})) for seg in bar.find_all(cls="seg")]
        assert kinds == ["q", "st", "r"], f"{key}: segments {kinds}"  # local tasks are queued, start, run
    # the retry: two bars in the lane of one task, each with its attempt number
    lanes = [row for row in group.find_all(cls="row") if row.find(cls="name").text == "+flow+flaky"]
    assert len(lanes) == 1
    assert [b.attrs["data-attempt"] for b in bars(lanes[0])] == ["1", "2"]
    assert "#1" in lanes[0].text and "#2" in lanes[0].text

    # the failed task: its error, and the last 20 lines of its log as text
    failure = dom.find("article", cls="failure", data_task="+flow+bad")
    error = rows[("+flow+bad", 1)]["result"]["error"]  # type: ignore[index]
    assert error and failure.find("pre", cls="error").text == error
    assert "exit code 3" in failure.text
    shown = failure.find("pre", cls="log").text.splitlines()
    assert shown == [f"log line {i}" for i in range(12, 31)] + [SCRIPT_LINE]
    assert drawn[("+flow+bad", 1)].tag == "a" and drawn[("+flow+bad", 1)].attrs["href"] == f"#{failure.attrs['id']}"
    retried = dom.find("article", cls="failure", data_task="+flow+flaky")
    assert retried.attrs["data-attempt"] == "1"

    shot = screenshot(tmp_path, page_path)
    width, height, _ = png_pixels(shot)
    assert (width, height) == (1280, 900)
    seen = colours(shot)
    assert len(seen) > 10, f"a blank screenshot ({len(seen)} colours)"
    assert any(r > 180 and g < 90 and b < 90 for r, g, b in seen), "no red (failed) bar on the screenshot"
    assert any(g > 130 and r < 90 and b < 100 for r, g, b in seen), "no green (succeeded) bar on the screenshot"


SLOW_FLOW = """\
+first:
  sh>: echo first
+slow:
  sh>: |
    echo slow is running
    while [ ! -f release ]; do sleep 0.05; done
"""


def test_a_run_going_on_is_drawn_up_to_now(project: Path, tmp_path: Path) -> None:
    (project / "flow.dig").write_text(SLOW_FLOW)
    driver = subprocess.Popen(
        [sys.executable, "-m", "offload.workflow.cli", "run", "flow.dig"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OFFLOAD_EXECUTOR": "local", "OFFLOAD_DISABLE_PLUGINS": "docker ecs kubernetes"},
    )
    try:
        wait_for_line(driver, "slow is running")
        page_path = tmp_path / "live.html"
        report(project, page_path)
    finally:
        (project / "release").touch()
        driver.communicate(timeout=120)
    assert driver.returncode == 0
    dom = rendered_dom(tmp_path, page_path)
    assert dom.find(id="run-state").text == "running"
    (slow,) = [b for b in bars(dom) if b.attrs["data-task"] == "+flow+slow"]
    assert slow.attrs["data-state"] == "running" and "live" in slow.classes
    assert "running now" in slow.attrs["title"]
    (first,) = [b for b in bars(dom) if b.attrs["data-task"] == "+flow+first"]
    assert first.attrs["data-state"] == "succeeded" and "live" not in first.classes
    assert dom.find_all(cls="now"), "no mark of now on the axis"

    # once the run is over, the same command shows it finished
    report(project, page_path)
    page = parse_html(page_path.read_text())
    assert page.find(id="run-state").text == "succeeded"
    assert {b.attrs["data-state"] for b in bars(page)} == {"succeeded"}


class Clock:
    """A clock that the test moves: the journal's instants, as a long run would have them."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def fake_run(project: Path, tasks: int, name: str = "+flow+t{i:04d}", base: float = 1_700_000_000.0) -> str:
    """A journal with a finished run of ``tasks`` tasks, up to 50 at a time, on two backends;
    every tenth task fails once and is retried."""
    clock = Clock()
    clock.now = base
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "time", clock)
        journal = Journal(str(project))
        run = journal.start_run(str(project / "flow.dig"), "2024-01-01T00:00:00+00:00")
        with journal.batch():
            for i in range(tasks):
                task = name.format(i=i)
                backend = "docker" if i % 3 else "ecs"
                for attempt in (1, 2) if i % 10 == 0 else (1,):
                    clock.now = base + (i // 50) * 40 + (i % 50) * 0.2 + (attempt - 1) * 20
                    task_id = f"id-{i}-{attempt}"
                    journal.submitting(run.run_id, task, attempt, task_id, backend)
                    clock.now += 1.5
                    journal.submitted(run.run_id, task, attempt, Handle(backend=backend, task_id=task_id, io_path=str(project / "io")))
                    failed = i % 10 == 0 and attempt == 1
                    result = Result(
                        state=TaskState.FAILED if failed else TaskState.SUCCEEDED,
                        exit_code=1 if failed else 0,
                        error="<img src=x onerror=\"document.title='pwned'\"> failed" if failed else None,
                        started_at=clock.now + 3,
                        finished_at=clock.now + 3 + (i % 7) * 2 + 1,
                    )
                    clock.now += 20
                    journal.finished(run.run_id, task, attempt, task_id, backend, result)
        journal.finish_run(run.run_id, TaskState.SUCCEEDED)
        journal.close()
    return run.run_id


def test_a_thousand_tasks_render(project: Path, tmp_path: Path) -> None:
    run_id = fake_run(project, 1000)
    page_path = tmp_path / "big.html"
    report(project, page_path, run_id[:12])  # a unique start of the run id names it
    page = page_path.read_text()
    no_network_references(page)
    elements = sum(1 for _ in parse_html(page).walk())
    assert elements < 10 * 1100, f"{elements} elements for 1,100 attempts"
    dom = rendered_dom(tmp_path, page_path)
    assert "pwned" not in dom.find("title").text
    drawn = bars(dom)
    assert len(drawn) == 1100
    assert {b.attrs["data-task"] for b in drawn} == {f"+flow+t{i:04d}" for i in range(1000)}
    assert {g.attrs["data-backend"] for g in dom.find_all("section", cls="group")} == {"docker", "ecs"}
    assert len(dom.find_all("article", cls="failure")) == 100
    assert not dom.find_all("img"), "an error's markup became an element"
    assert "1000 tasks, 1100 attempts (100 retried)" in dom.text
    screenshot(tmp_path, page_path, "big.png")


def test_names_and_errors_are_text(project: Path, tmp_path: Path) -> None:
    run_id = fake_run(project, 3, name="+flow+x'\"<b>{i}</b>&amp;")
    page_path = tmp_path / "odd.html"
    report(project, page_path, run_id)
    page = parse_html(page_path.read_text())
    assert not [b for b in page.find_all("b") if b.text in {"0", "1", "2"}], "a task name's markup became an element"
    names = {b.attrs["data-task"] for b in bars(page)}
    assert names == {f"+flow+x'\"<b>{i}</b>&amp;" for i in range(3)}
    failure = page.find("article", cls="failure")
    assert failure.find("pre", cls="error").text == "<img src=x onerror=\"document.title='pwned'\"> failed"
    assert "No log was kept" in failure.text
    assert not page.find_all("img")


def test_output_to_standard_output(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = fake_run(project, 2)
    assert main(["report", "--project", str(project), "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and run_id in out


def test_the_latest_run_by_default_and_a_default_file_name(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_run(project, 1)
    latest = fake_run(project, 2, base=1_800_000_000.0)
    fake_run(project, 1, base=1_600_000_000.0)
    monkeypatch.chdir(project)
    assert main(["report"]) == 0
    page = parse_html((project / f"offload-report-{latest}.html").read_text())
    assert page.find(id="run-id").text == latest


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no journal", "no journal at {project}/.offload/journal.sqlite: run a workflow of this project first"),
        ("no run yet", "journal {project}/.offload/journal.sqlite has no run yet"),
        ("corrupt journal", "journal {project}/.offload/journal.sqlite cannot be read (file is not a database); nothing was changed"),
        ("unknown run", "no run 'nosuchrun' in journal {project}/.offload/journal.sqlite (its latest runs: {run}"),
        ("output in a missing directory", "-o {tmp}/missing/run.html: cannot write it: No such file or directory"),
        ("output is a directory", "-o {tmp}: is a directory"),
        ("negative log lines", "--log-lines -1: must be 0 or more"),
    ],
)
def test_bad_input_is_one_message_and_status_2(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str) -> None:
    run_id = ""
    args = ["report", "--project", str(project), "-o", str(tmp_path / "run.html")]
    if case == "no run yet":
        Journal(str(project)).close()
    elif case == "corrupt journal":
        (project / ".offload").mkdir()
        (project / ".offload" / "journal.sqlite").write_bytes(b"not a database, not at all\n" * 200)
    elif case != "no journal":
        run_id = fake_run(project, 1)
    if case == "unknown run":
        args.insert(1, "nosuchrun")
    elif case == "output in a missing directory":
        args[-1] = str(tmp_path / "missing" / "run.html")
    elif case == "output is a directory":
        args[-1] = str(tmp_path)
    elif case == "negative log lines":
        args += ["--log-lines", "-1"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("offload: error: " + message.format(project=project, tmp=tmp_path, run=run_id)), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run.html").exists()
    if case == "corrupt journal":
        assert (project / ".offload" / "journal.sqlite").read_bytes() == b"not a database, not at all\n" * 200
    assert not list(tmp_path.glob(".*.tmp-*")), "a temporary file was left behind"
