"""ECS and its temporal storage, as a user meets them: ``offload check`` reports the storage,
``offload plugins`` lists it, and ``offload gc`` removes the task folders no journal tracks
(this project's only, never one written to in the last hour)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from ecs_harness.world import BUCKET, IMAGE, World

import offload
from offload.testing import make_request, wait_for

TASK = {"docker": {"image": IMAGE}}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offload", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_check_reports_the_temporal_storage(world: World, tmp_path: Path) -> None:
    config = tmp_path / "offload.yml"
    config.write_text(yaml.safe_dump({"command_executor": {"ecs": world.section()}}))
    done = cli("check", "ecs", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok   s3: ready (bucket {BUCKET})" in done.stdout
    assert "     configured at offload.yml: command_executor.ecs.temporal_storage" in done.stdout
    assert "testing" not in done.stdout  # the credentials, taken from the cluster's settings

    section = world.section()
    section["temporal_storage"]["s3"]["bucket"] = "no-such-bucket-here"
    config.write_text(yaml.safe_dump({"command_executor": {"ecs": section}}))
    done = cli("check", "ecs", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert "FAIL s3: bucket no-such-bucket-here not found" in done.stdout
    assert "FAIL ecs: temporal storage: s3: bucket no-such-bucket-here not found" in done.stdout


def test_plugins_lists_the_storage(tmp_path: Path) -> None:
    done = cli("plugins", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("s3: offload-s3 ")))
    assert "    storages: s3" in lines[at : at + 3]


def test_gc_removes_the_folders_no_journal_tracks_in_this_project_only(world: World, tmp_path: Path) -> None:
    projects = [tmp_path / "one", tmp_path / "two"]
    handles = []
    with offload.Executor(world.config()) as executor:
        for project in projects:
            project.mkdir()
            for _ in range(2):
                handle = executor.submit(make_request(project, "echo hi > $OFFLOAD_IO_DIR/out.txt", TASK))
                result, _ = wait_for(executor, handle)
                assert result.ok
                handles.append(handle)
        backend = executor.backends.get("ecs")
        one = str(projects[0])
        assert executor.collect_garbage("ecs", [], dry_run=True, project_dir=one) == [], "folders written in the last hour are kept"
        backend.gc_min_age = 0  # type: ignore[attr-defined]
        kept, dropped = handles[0], handles[1]
        would = executor.collect_garbage("ecs", [kept], dry_run=True, project_dir=one)
        assert len(would) == 1 and dropped.state["input_key"].rsplit("/", 1)[0] in would[0] and "(1 file," in would[0]
        assert executor.collect_garbage("ecs", [kept], project_dir=one) == would
        assert executor.collect_garbage("ecs", [kept], dry_run=True, project_dir=one) == []
        storage = backend.storage  # type: ignore[attr-defined]
        assert storage.exists(kept.state["output_key"]) and not storage.exists(dropped.state["output_key"])
        assert all(storage.exists(h.state["output_key"]) for h in handles[2:]), "another project's folders are its own journal's business"
