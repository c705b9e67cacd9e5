"""The project archive that goes to the task, and the io archive that comes back.

The archive holds ``project/`` (the project's files, without ``.git`` and without
``.offload`` apart from this task's io directory) and ``offload/`` (offload's own
files for the task: the environment and the script body when they do not fit in the
container override).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Iterator, Mapping

SKIPPED = (".git", ".offload")


def _project_files(project_dir: str, io_dir: str) -> Iterator[str]:
    """Paths relative to ``project_dir`` to archive, directories before their contents."""
    io_dir = os.path.normpath(io_dir)
    for root, dirs, files in os.walk(project_dir):
        rel_root = os.path.relpath(root, project_dir)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d not in SKIPPED]
        dirs.sort()
        for name in dirs:
            yield os.path.normpath(os.path.join(rel_root, name))
        for name in sorted(files):
            yield os.path.normpath(os.path.join(rel_root, name))
    io_path = os.path.join(project_dir, io_dir)
    if io_dir.split(os.sep)[0] in SKIPPED and os.path.isdir(io_path):
        parts = io_dir.split(os.sep)
        for i in range(1, len(parts)):
            yield os.path.join(*parts[:i])
        for root, dirs, files in os.walk(io_path):
            yield os.path.relpath(root, project_dir)
            for name in sorted(files) + sorted(d for d in dirs if os.path.islink(os.path.join(root, d))):
                yield os.path.relpath(os.path.join(root, name), project_dir)


def build_archive(project_dir: str, io_dir: str, extra: Mapping[str, str]) -> str:
    """A gzipped tar of the project plus ``extra`` files (name under ``offload/`` to text); its path."""
    fd, path = tempfile.mkstemp(prefix="offload-project-", suffix=".tar.gz")
    os.close(fd)
    try:
        with tarfile.open(path, "w:gz") as tar:
            tar.add(project_dir, arcname="project", recursive=False)  # there even when the project is empty
            for rel in _project_files(project_dir, io_dir):
                tar.add(os.path.join(project_dir, rel), arcname=f"project/{rel}", recursive=False)
            for name, text in sorted(extra.items()):
                data = text.encode("utf-8")
                info = tarfile.TarInfo(f"offload/{name}")
                info.size = len(data)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))
    except BaseException:
        os.unlink(path)
        raise
    return path


def _safe(member: tarfile.TarInfo, dest: str) -> bool:
    target = os.path.realpath(os.path.join(dest, member.name))
    inside = target == dest or target.startswith(dest + os.sep)
    if not inside or os.path.isabs(member.name):
        return False
    if member.issym() or member.islnk():
        link = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
        return link == dest or link.startswith(dest + os.sep)
    return member.isfile() or member.isdir()


def extract_archive(data: bytes, dest: str) -> list[str]:
    """Unpack the io archive ``data`` into ``dest``; members that would leave it are skipped."""
    dest = os.path.realpath(dest)
    os.makedirs(dest, exist_ok=True)
    skipped = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        members = []
        for member in tar.getmembers():
            if _safe(member, dest):
                members.append(member)
            else:
                skipped.append(member.name)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(dest, members=members)
    return skipped
