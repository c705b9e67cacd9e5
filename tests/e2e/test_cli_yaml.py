"""A workflow file is YAML as Digdag reads it: a duplicate key is an error naming both lines,
and ``10:00:00``, ``yes``/``no``/``on``/``off`` and dates stay the strings they are written as."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.workflow.cli import main


@pytest.fixture(autouse=True)
def _local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_EXECUTOR", "local")


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo 1 > one\n+b:\n  sh>: echo 2\n+a:\n  sh>: echo 3\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 2
    err = capsys.readouterr().err
    assert "flow.dig: not valid YAML (line 5, column 1): duplicate key '+a' (first at line 1, again at line 5)" in err
    assert not (tmp_path / "one").exists()


def test_times_yes_no_on_off_and_dates_stay_strings_and_true_false_numbers_do_not(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.dig").write_text(
        "+a:\n  sh>: echo \"${at} ${y} ${n} ${on} ${off} ${day} ${flag} ${count}\"\n"
        "  at: 10:00:00\n  y: yes\n  n: no\n  on: on\n  off: off\n  day: 2026-01-31\n  flag: true\n  count: 0x10\n"
    )
    assert main(["run", str(tmp_path / "flow.dig")]) == 0, capsys.readouterr().err
    assert "[+flow+a] 10:00:00 yes no on off 2026-01-31 true 16" in capsys.readouterr().out


def test_include_puts_another_files_mapping_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "step.dig").write_text("_export:\n  who: included\n!include : more.dig\n")  # relative to parts/
    (tmp_path / "parts" / "more.dig").write_text("sh>: echo hello ${who}\n")
    (tmp_path / "flow.dig").write_text("+a:\n  !include : 'parts/step.dig'\n+b:\n  sh>: echo after\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.splitlines()[:2] == ["[+flow+a] hello included", "[+flow+b] after"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"flow.dig": "+a:\n  !include : nowhere.dig\n"}, "!include 'nowhere.dig': cannot read"),
        ({"flow.dig": "+a:\n  !include : ../outside.dig\n"}, "!include '../outside.dig' is outside the workflow's directory"),
        ({"flow.dig": "+a:\n  !include : self.dig\n", "self.dig": "!include : self.dig\n"}, "nested more than 20 deep"),
        ({"flow.dig": "+a:\n  sh>: echo\n  !include : dup.dig\n", "dup.dig": "sh>: echo again\n"}, "key 'sh>' is also in the including mapping"),
    ],
)
def test_a_bad_include_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert main(["run", str(tmp_path / "flow.dig")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_tab_in_the_indentation_is_named_in_the_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # libyaml reads the file first; its message for this leaves the character out, so the
    # file is read again by the pure-Python parser, whose message names it
    (tmp_path / "flow.dig").write_text("+a:\n\tsh>: echo\n")
    assert main(["run", str(tmp_path / "flow.dig")]) == 2
    err = capsys.readouterr().err
    assert "flow.dig: not valid YAML (line 2, column 1): found character '\\t' that cannot start any token" in err


def test_both_parsers_read_digdag_yaml_alike() -> None:
    from offload.workflow import yamlload

    if yamlload.FastDigdagLoader is None:
        pytest.skip("PyYAML without libyaml: only the pure-Python parser is used")
    text = "a: yes\nb: 10:00:00\nc: 2026-01-31\nd: TRUE\ne: 1.5\nf: ~\ng: 0x1F\nh: &x {k: [1, '2']}\ni:\n  <<: *x\n  z: null\n"
    fast = yamlload._load(yamlload.FastDigdagLoader, text, None, None, 0)
    assert fast == yamlload._load(yamlload.DigdagLoader, text, None, None, 0)
    assert fast["b"] == "10:00:00" and fast["d"] is True and fast["i"] == {"k": [1, "2"], "z": None}
