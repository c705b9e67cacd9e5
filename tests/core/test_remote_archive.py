"""The archives that carry the project to a task and its io directory back."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from offload.remote import build_archive, extract_archive


def test_the_project_archive_skips_git_and_other_tasks_io(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / ".offload" / "io" / "mine").mkdir(parents=True)
    (tmp_path / ".offload" / "io" / "mine" / "in.txt").write_text("in")
    (tmp_path / ".offload" / "io" / "other").mkdir()
    (tmp_path / ".offload" / "io" / "other" / "secret.txt").write_text("no")
    (tmp_path / ".offload" / "journal.sqlite").write_text("no")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)")
    (tmp_path / "empty").mkdir()
    path = build_archive(str(tmp_path), ".offload/io/mine", {"env.sh": "export A=1\n"})
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
    finally:
        Path(path).unlink()
    assert {"project/src/a.py", "project/empty", "project/.offload/io/mine/in.txt", "offload/env.sh"} <= names
    assert not any(".git" in n or "other" in n or "journal" in n for n in names)


def test_an_io_archive_cannot_write_outside_the_io_directory(tmp_path: Path) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, text in (("./output.json", b"{}"), ("../escaped.txt", b"x"), ("/etc/evil", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    dest = tmp_path / "io"
    skipped = extract_archive(data.getvalue(), str(dest))
    assert (dest / "output.json").read_text() == "{}"
    assert sorted(skipped) == ["../escaped.txt", "/etc/evil", "link"]
    assert not (tmp_path / "escaped.txt").exists() and not (dest / "link").exists()
