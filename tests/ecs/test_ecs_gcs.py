"""ECS with GCS as its temporal storage: ``temporal_storage.type: gcs``, against moto for ECS
and the GCS emulator on 127.0.0.1 for the storage. The task (run by the test agent) fetches
the project and sends its output back with curl through V4 signed URLs, as on AWS with S3;
the ECS plugin never imports offload-gcs."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ecs_harness.world import IMAGE, World

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gcs"))  # the GCS emulator and token endpoint

import gcs_harness

import offload
from offload.testing import make_request, wait_for

gcs_harness.offline_environment()

TASK = {"docker": {"image": IMAGE}}


@pytest.fixture(scope="module")
def gcs() -> Iterator[tuple[gcs_harness.Emulator, dict[str, str]]]:
    emulator, tokens = gcs_harness.Emulator(), gcs_harness.TokenServer()
    emulator.start()
    tokens.start()
    account = gcs_harness.service_account_info(gcs_harness.GOOD_EMAIL, gcs_harness.new_private_key(), tokens.url)
    yield emulator, account
    tokens.stop()
    emulator.close()


@pytest.fixture
def gcs_config(world: World, gcs: tuple[gcs_harness.Emulator, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    gcs_harness.loopback_only(monkeypatch)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    emulator, account = gcs
    bucket = f"offload-ecs-{uuid.uuid4().hex[:10]}"
    admin = storage.Client(project=gcs_harness.PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator.url})
    admin.create_bucket(bucket)
    admin.close()

    def config(**settings: Any) -> dict[str, Any]:
        section = world.section(**settings)
        section["temporal_storage"] = {"type": "gcs", "gcs": {"bucket": bucket, "endpoint": emulator.url, "credentials": {"json": {"content": account}}}}
        return {"command_executor": {"type": "ecs", "ecs": section}}

    yield {"make": config, "bucket": bucket}


def test_a_task_runs_on_ecs_with_gcs_as_its_temporal_storage(world: World, gcs_config: dict[str, Any], project: Path) -> None:
    (project / "input.txt").write_text("from the project\n")
    script = 'cat input.txt; echo "sent back" > "$OFFLOAD_IO_DIR/out.txt"; printf \'{"export_params": {"via": "gcs"}}\' > "$OFFLOAD_IO_DIR/output.json"'
    with offload.Executor(gcs_config["make"]()) as executor:
        handle = executor.submit(make_request(project, script, TASK))
        result, logs = wait_for(executor, handle)
        storage = executor.backends.get("ecs").storage  # type: ignore[attr-defined]
        assert storage.uri("").startswith(f"gs://{gcs_config['bucket']}/offload/")
        assert not storage.exists(handle.state["input_key"]), "the project archive is deleted once collected"
        assert storage.exists(handle.state["output_key"])
    assert result.ok, logs
    assert "from the project" in logs
    assert (Path(handle.io_path) / "out.txt").read_text() == "sent back\n"
    assert result.export_params == {"via": "gcs"}


def test_an_environment_file_needs_s3_so_gcs_carries_it_in_the_archive(world: World, gcs_config: dict[str, Any], project: Path) -> None:
    env = {f"VAR_{i}": "y" * 200 for i in range(60)}
    with offload.Executor(gcs_config["make"](use_environment_file=True)) as executor:
        handle = executor.submit(make_request(project, 'echo "${#VAR_7}"', TASK, env=env))
        result, logs = wait_for(executor, handle)
    assert result.ok and "200" in logs, logs
    assert any("environment goes in the project archive" in line and "ECS reads environment files from S3 only" in line for line in logs), logs
    assert "environmentFiles" not in world.task(handle.state["task_arn"])["overrides"]["containerOverrides"][0]


def test_check_reports_the_gcs_storage(world: World, gcs_config: dict[str, Any]) -> None:
    with offload.Executor(gcs_config["make"]()) as executor:
        health = executor.check("ecs")
        [storage] = executor.storages()
        found = executor.check_storage(storage)
    assert health.ok and health.summary.startswith(f"ecs: ready (cluster offload-test, storage gs://{gcs_config['bucket']}/offload/"), health
    assert found.ok and storage.type == "gcs"
