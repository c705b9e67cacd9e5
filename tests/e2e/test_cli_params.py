"""Session params from the command line, as ``digdag run`` takes them: ``-p KEY=VALUE`` and
``-P params.yml`` (``-p`` wins), known to the check before the run as to the run itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.workflow.cli import main

FLOW = '+first:\n  sh>: echo "hello ${who} ${place.city}"\n'


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flow.dig").write_text(FLOW)
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "local")
    return tmp_path


def test_a_p_param_used_by_the_first_task_runs_and_explains(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flow.dig").write_text('+first:\n  sh>: echo "hello ${who}"\n')
    assert main(["explain", str(project / "flow.dig"), "-p", "who=world"]) == 0, capsys.readouterr().err
    assert "+flow+first: runs on local" in capsys.readouterr().out
    assert main(["run", str(project / "flow.dig"), "-p", "who=world"]) == 0, capsys.readouterr().err
    assert "[+flow+first] hello world" in capsys.readouterr().out


def test_a_params_file_gives_nested_params_and_p_wins_over_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "params.yml").write_text("who: the file\nplace:\n  city: Lisbon\n")
    assert main(["run", str(project / "flow.dig"), "-P", str(project / "params.yml")]) == 0, capsys.readouterr().err
    assert "[+flow+first] hello the file Lisbon" in capsys.readouterr().out
    assert main(["run", "--rerun", str(project / "flow.dig"), "-P", str(project / "params.yml"), "-p", "who=the command line"]) == 0
    assert "[+flow+first] hello the command line Lisbon" in capsys.readouterr().out


def test_a_param_still_missing_is_reported_before_the_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(project / "flow.dig"), "-p", "who=world"]) == 2
    assert "+flow+first: sh>: ${place}: unknown param 'place'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "-P {path}: cannot read it"),
        ("who: [unclosed\n", "-P {path}: not valid YAML (line 2, column 1)"),
        ("- a list\n", "-P {path}: must be a mapping of param names to values, got list"),
    ],
)
def test_a_bad_params_file_is_one_clear_message_and_exit_2(project: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str) -> None:
    path = project / "params.yml"
    if content is not None:
        path.write_text(content)
    assert main(["run", str(project / "flow.dig"), "-P", str(path)]) == 2
    err = capsys.readouterr().err
    assert message.format(path=path) in err and "Traceback" not in err


def test_stored_params_merge_leaf_by_leaf_into_earlier_params_as_in_digdag(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "flow.dig").write_text(
        "_export:\n  limits: {memory: 1, cpu: 2}\n"
        "+a:\n  sh>: |\n    echo '{\"store_params\": {\"limits\": {\"memory\": 4}, \"x\": {\"a\": 1}}}' > \"$OFFLOAD_IO_DIR/output.json\"\n"
        "+b:\n  sh>: |\n    echo '{\"store_params\": {\"x\": {\"b\": 2}}}' > \"$OFFLOAD_IO_DIR/output.json\"\n"
        '+c:\n  sh>: echo "memory ${limits.memory} cpu ${limits.cpu} x ${x.a} ${x.b}"\n'
    )
    assert main(["run", str(project / "flow.dig")]) == 0, capsys.readouterr().err
    assert "[+flow+c] memory 4 cpu 2 x 1 2" in capsys.readouterr().out
