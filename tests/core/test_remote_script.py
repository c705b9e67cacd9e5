"""The container script of ``offload.remote``, run by a real ``/bin/sh`` on this machine.

A backend without a storage hands the project in as a file and takes the io directory
back from the log; these tests run the script as such a container would."""

from __future__ import annotations

import base64
import io
import subprocess
import tarfile
from pathlib import Path

from offload.remote import INLINE_BEGIN, INLINE_END, build_archive, loader, task_body

MARKER = "offload-end-of-log-test"


def run(project: Path, argv: list[str], limit: int) -> tuple[int, list[str]]:
    archive = build_archive(str(project), ".offload/io/t", {})
    script = loader(None, task_body(argv, ".", ".offload/io/t", None, MARKER, inline_limit=limit), archive_path=archive)
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.splitlines()


def returned(lines: list[str]) -> dict[str, bytes]:
    begin, end = lines.index(MARKER + INLINE_BEGIN), lines.index(MARKER + INLINE_END)
    data = base64.b64decode("".join(lines[begin + 1 : end]))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_the_io_directory_comes_back_in_the_log_after_the_output_and_before_the_marker(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from the project\n")
    code, lines = run(tmp_path, ["sh", "-c", 'cat data.txt; echo \'{"a": 1}\' > "$0/output.json"; exit 3', ".offload/io/t"], 1 << 20)
    assert code == 3
    assert lines[0] == "from the project"
    assert lines[-1] == MARKER
    assert returned(lines) == {"output.json": b'{"a": 1}\n'}


def test_an_io_directory_over_the_limit_sends_only_output_json_and_says_so(tmp_path: Path) -> None:
    argv = ["sh", "-c", 'head -c 200000 /dev/urandom > "$0/big.bin"; echo "{}" > "$0/output.json"', ".offload/io/t"]
    archive = build_archive(str(tmp_path), ".offload/io/t", {})
    script = loader(None, task_body(argv, ".", ".offload/io/t", None, MARKER, inline_limit=10_000), archive_path=archive)
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert returned(done.stdout.splitlines()) == {"output.json": b"{}\n"}
    assert "only output.json comes back" in done.stderr


def test_a_missing_archive_is_a_setup_failure_with_a_message(tmp_path: Path) -> None:
    script = loader(None, task_body(["true"], ".", "io", None, MARKER), archive_path=str(tmp_path / "nope.tgz"))
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 125
    assert "project archive is not in the container" in done.stderr
