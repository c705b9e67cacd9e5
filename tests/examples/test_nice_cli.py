"""The example backend offload-nice as a user meets it: installed, found, chosen and run by the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from offload.workflow.cli import main

CONFIG = "command_executor:\n  order: [nice, local]\n"

FLOW = """\
+niced:
  _export:
    nice: {level: 7}
    greeting: hello
  +prio:
    sh>: |
      cut -d' ' -f19 /proc/$$/stat > prio.txt
      env > env.txt
+plain:
  sh>: cut -d' ' -f19 /proc/$$/stat > plain.txt
"""


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OFFLOAD_CONFIG", raising=False)
    monkeypatch.delenv("OFFLOAD_EXECUTOR", raising=False)
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", "docker,ecs")  # this is about nice; keep others' work out


def project(tmp_path: Path, flow: str) -> Path:
    (tmp_path / "flow.dig").write_text(flow)
    (tmp_path / "offload.yml").write_text(CONFIG)
    return tmp_path


def table_row(stdout: str, task: str) -> list[str]:
    rows = [line.split() for line in stdout.splitlines() if line.startswith(task + " ")]
    assert len(rows) == 1, stdout
    return rows[0]


def test_a_task_with_nice_settings_runs_on_nice_with_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = project(tmp_path, FLOW)
    code = main(["run", str(flow / "flow.dig")])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert table_row(out, "+flow+niced+prio")[1:3] == ["nice", "succeeded"]
    assert (flow / "prio.txt").read_text().strip() == str(max(7, os.getpriority(os.PRIO_PROCESS, 0)))
    env = (flow / "env.txt").read_text().splitlines()
    assert "greeting=hello" in env  # params do become environment variables...
    assert not [line for line in env if line.startswith("nice=")]  # ...but a backend's task key never does
    assert table_row(out, "+flow+plain")[1:3] == ["local", "succeeded"]
    assert (flow / "plain.txt").read_text().strip() == str(os.getpriority(os.PRIO_PROCESS, 0))


def test_plugins_lists_nice_with_its_distribution_and_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plugins"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    at = lines.index("nice: offload-nice 0.1.0")
    assert lines[at + 1] == "    backends: nice"


def test_explain_shows_the_task_on_nice_and_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = project(tmp_path, FLOW)
    code = main(["explain", str(flow / "flow.dig")])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    lines = out.splitlines()
    at = lines.index("+flow+niced+prio: runs on nice")
    assert lines[at + 1].split() == ["nice", "chosen:", "configured", "for", "this", "task"]
    at = lines.index("+flow+plain: runs on local")
    assert lines[at + 1].startswith("    nice     skipped: ") and lines[at + 1].endswith("nice: not set for this task (nice: {} runs it at the default level)")
    assert lines[at + 2].split()[:2] == ["local", "chosen:"]
    assert not (flow / ".offload" / "io").exists()


def test_a_level_out_of_range_is_one_clear_error_and_nothing_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = project(tmp_path, "+first:\n  sh>: touch ran.txt\n+bad:\n  nice: {level: 42}\n  sh>: touch ran.txt\n")
    code = main(["run", str(flow / "flow.dig")])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("offload: error: ")]
    assert errors == ["offload: error: flow.dig: +flow+bad: nice.level: must be 0 to 19, got 42"], err
    assert "Traceback" not in err
    assert not (flow / "ran.txt").exists()
    assert not (flow / ".offload" / "io").exists()
