"""A journal that cannot be read stops every command with one message; it is never replaced."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from offload.workflow.cli import main

FLOW = "+a:\n  sh>: echo a >> ran.log\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flow.dig").write_text(FLOW)
    monkeypatch.setenv("OFFLOAD_DISABLE_PLUGINS", "docker ecs")
    return tmp_path


def journal(project: Path) -> Path:
    return project / ".offload" / "journal.sqlite"


def a_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(project / "flow.dig")]) == 0
    capsys.readouterr()


def corrupt_page(path: Path) -> None:
    """Overwrite the middle of the file with garbage, as a disk or a bad copy would."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data)):
        data[i] = 0xA5
    path.write_bytes(bytes(data))


BREAKAGES = {
    "garbage": lambda p: p.write_bytes(b"this is not a database at all\n" * 100),
    "empty": lambda p: p.write_bytes(b""),
    "corrupt pages": corrupt_page,
    "newer offload": lambda p: sqlite3.connect(p).execute("PRAGMA user_version = 99").connection.close(),
}
MESSAGES = {"garbage": "is corrupt", "empty": "is empty", "corrupt pages": "is corrupt", "newer offload": "was written by a newer offload (journal version 99"}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("command", [["run"], ["run", "--rerun"], ["gc"]])
def test_an_unusable_journal_is_one_clear_error_and_stays_untouched(
    project: Path, capsys: pytest.CaptureFixture[str], breakage: str, command: list[str]
) -> None:
    a_run(project, capsys)
    BREAKAGES[breakage](journal(project))
    before = journal(project).read_bytes()
    target = str(project) if command == ["gc"] else str(project / "flow.dig")
    code = main([command[0], target, *command[1:]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"journal {journal(project)} {MESSAGES[breakage]}" in err
    assert f"mv {journal(project)} {journal(project)}.bad" in err
    assert "unexpected" not in err and "Traceback" not in err
    assert journal(project).read_bytes() == before
    assert (project / "ran.log").read_text() == "a\n"  # nothing ran again


def test_the_journal_is_private_to_its_owner(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_run(project, capsys)
    for path in journal(project).parent.glob("journal.sqlite*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # a journal from before, readable by all, is made private when next opened
    os.chmod(journal(project), 0o644)
    a_run(project, capsys)
    assert stat.S_IMODE(journal(project).stat().st_mode) == 0o600


def test_no_temporary_journal_is_left_behind(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_run(project, capsys)
    names = sorted(p.name for p in journal(project).parent.iterdir())
    assert [n for n in names if ".new-" in n] == []
