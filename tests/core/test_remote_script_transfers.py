"""The container script's transfers, run by a real ``/bin/sh`` against an HTTP server on
127.0.0.1 that answers the first requests of a path with an error: how often the download
of the project and the upload of the io directory are tried, and what an HTTP error on the
upload does (``curl_fail``, ``failed_upload_fails``), with curl and with the python3 fallback."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from offload.remote import build_archive, loader, task_body
from offload.remote.script import DEFAULT_RETRIES, SETUP_FAILED, UPLOAD_FAILED

MARKER = "offload-end-of-log-transfers"
IO_DIR = ".offload/io/t"
#: What the script needs besides a transfer tool, for a PATH without curl and wget.
TOOLS = ("sh", "tar", "gzip", "mktemp", "rm", "mkdir", "cat", "true")


class Store:
    """The objects of the test server, and the errors it answers with first."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.errors: dict[str, list[Any]] = {}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.url = ""

    def fail(self, path: str, count: int, status: int = 503) -> None:
        self.errors[path] = [count, status]


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self) -> bool:
            store.requests[self.command, self.path] += 1
            error = store.errors.get(self.path)
            if error and error[0] > 0:
                error[0] -= 1
                self._answer(error[1], f"<Error><Code>Test{error[1]}</Code></Error>".encode())
                return True
            return False

        def do_GET(self) -> None:
            if self._error():
                return
            if self.path not in store.objects:
                self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>")
                return
            self._answer(200, store.objects[self.path])

        def do_PUT(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self._error():
                return
            store.objects[self.path] = data
            self._answer(200)

    return Handler


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(store))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    store.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield store
    server.shutdown()
    server.server_close()


def url(store: Store, path: str) -> str:
    return store.url + path


@pytest.fixture
def project(tmp_path: Path, store: Store) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    (path / "data.txt").write_text("from the project\n")
    archive = build_archive(str(path), IO_DIR, {})
    store.objects["/project.tgz"] = Path(archive).read_bytes()
    os.unlink(archive)
    return path


@pytest.fixture
def python_only(tmp_path: Path) -> str:
    """A PATH with python3 and the shell tools, but neither curl nor wget."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = shutil.which("python3", path="/usr/bin:/bin") or os.path.realpath(sys.executable)
    (bin_dir / "python3").symlink_to(python)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run(store: Store, command: str, path: str | None = None, *, download_retries: int = 1, **body: Any) -> subprocess.CompletedProcess[str]:
    """The whole script: download from ``/project.tgz``, run ``command``, upload to ``/out.tgz``."""
    argv = ["sh", "-c", command, IO_DIR]
    script = loader(url(store, "/project.tgz"), task_body(argv, ".", IO_DIR, url(store, "/out.tgz"), MARKER, **body), download_retries=download_retries)
    env = {**os.environ, "PATH": path} if path else None
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60, env=env)


def uploaded(store: Store) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(store.objects["/out.tgz"])) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


WRITE = 'cat data.txt; echo done > "$0/out.txt"'


@pytest.mark.parametrize("tool", ["curl", "python3"])
@pytest.mark.parametrize(("retries", "ok"), [(2, True), (1, False)])
def test_the_download_is_tried_again_as_many_times_as_asked(store: Store, project: Path, python_only: str, tool: str, retries: int, ok: bool) -> None:
    store.fail("/project.tgz", 2)
    done = run(store, WRITE, python_only if tool == "python3" else None, download_retries=retries)
    assert store.requests["GET", "/project.tgz"] == retries + 1
    if ok:
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["from the project", MARKER]
        assert uploaded(store) == {"out.txt": b"done\n"}
    else:
        assert done.returncode == SETUP_FAILED
        assert "offload: cannot download the project archive" in done.stderr
        assert "from the project" not in done.stdout


@pytest.mark.parametrize("tool", ["curl", "python3"])
def test_a_download_answered_404_is_not_tried_again(store: Store, project: Path, python_only: str, tool: str) -> None:
    del store.objects["/project.tgz"]
    done = run(store, "true", python_only if tool == "python3" else None, download_retries=3)
    assert done.returncode == SETUP_FAILED
    assert store.requests["GET", "/project.tgz"] == 1


@pytest.mark.parametrize("tool", ["curl", "python3"])
@pytest.mark.parametrize(("retries", "ok"), [(3, True), (2, False)])
def test_the_upload_is_tried_again_as_many_times_as_asked(store: Store, project: Path, python_only: str, tool: str, retries: int, ok: bool) -> None:
    store.fail("/out.tgz", 3)
    done = run(store, WRITE, python_only if tool == "python3" else None, upload_retries=retries)
    assert store.requests["PUT", "/out.tgz"] == retries + 1
    assert done.returncode == 0, "the command's code: a failed upload is only reported by default"
    assert ("/out.tgz" in store.objects) is ok
    assert ("offload: cannot upload the output archive" in done.stderr) is (not ok)


def test_by_default_an_http_error_on_the_upload_is_reported_and_the_command_s_code_kept(store: Store, project: Path) -> None:
    store.fail("/out.tgz", 1, 403)
    done = run(store, WRITE)
    assert done.returncode == 0
    assert "offload: cannot upload the output archive" in done.stderr
    assert store.requests["PUT", "/out.tgz"] == 1, "403 is not worth trying again"


def test_without_curl_fail_curl_takes_an_http_error_answer_and_its_text_goes_to_the_log(store: Store, project: Path) -> None:
    store.fail("/out.tgz", 1, 403)
    done = run(store, WRITE, curl_fail=False)
    assert done.returncode == 0
    assert "offload: cannot upload the output archive" not in done.stderr
    assert "<Error><Code>Test403</Code></Error>" in done.stderr + done.stdout
    assert done.stdout.splitlines()[-1].endswith(MARKER)


def test_failed_upload_fails_makes_an_http_error_on_the_upload_fail_the_script(store: Store, project: Path) -> None:
    store.fail("/out.tgz", 1, 403)
    done = run(store, WRITE, failed_upload_fails=True)
    assert done.returncode == UPLOAD_FAILED
    assert "offload: cannot upload the output archive" in done.stderr
    assert done.stdout.splitlines()[-1] == MARKER


def test_a_failing_command_keeps_its_code_when_the_upload_fails_too(store: Store, project: Path) -> None:
    store.fail("/out.tgz", 1, 403)
    assert run(store, "exit 3", failed_upload_fails=True).returncode == 3


def test_a_successful_upload_leaves_the_command_s_code_alone(store: Store, project: Path) -> None:
    done = run(store, WRITE, failed_upload_fails=True, curl_fail=False)
    assert done.returncode == 0, done.stderr
    assert uploaded(store) == {"out.txt": b"done\n"}


def test_the_defaults_are_those_of_before(store: Store) -> None:
    script = loader(url(store, "/p"), task_body(["true"], ".", "io", url(store, "/o"), MARKER))
    assert f"project.tgz {DEFAULT_RETRIES} || " in script and DEFAULT_RETRIES == 5
    assert f"/o {DEFAULT_RETRIES} -f || {{ echo 'offload: cannot upload the output archive' >&2; }}" in script
    assert f"offload_code={UPLOAD_FAILED}" not in script


@pytest.mark.parametrize("value", [-1, True, "3", 1.5])
def test_a_retry_count_that_is_not_a_count_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="must be a count"):
        loader("http://127.0.0.1/p", None, download_retries=value)
    with pytest.raises(ValueError, match="must be a count"):
        task_body(["true"], ".", "io", "http://127.0.0.1/o", MARKER, upload_retries=value)
