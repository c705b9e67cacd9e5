"""Secrets at rest: the handle, as the journal stores it, holds no presigned URL, no
credential and none of the task's environment; the URLs are signed when needed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from ecs_harness.world import IMAGE, World

import offload
from offload import from_json, to_dict, to_json
from offload.testing import make_request, wait_for

TASK = {"docker": {"image": IMAGE}}
ACCESS_KEY = "AKIAOFFLOADSECRETTEST"
SECRET_KEY = "s3cr3t-access-key-of-the-cluster"
STORAGE_SECRET = "s3cr3t-key-of-the-bucket"
ENV_SECRET = "p4ssw0rd-in-the-task-environment"
#: What a presigned URL or a credential looks like (SigV4 and SigV2 query strings, any URL).
LEAKS = re.compile(r"X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|AWSAccessKeyId|Signature=|https?://", re.IGNORECASE)


def secret_config(world: World) -> dict[str, object]:
    config = world.config(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, run_task_retry_delay=0.1)
    config["command_executor"]["ecs"]["temporal_storage"]["s3"]["credentials"] = {"access-key-id": "STORAGEKEY", "secret-access-key": STORAGE_SECRET}
    return config


def assert_clean(handle: offload.Handle) -> None:
    text = json.dumps(to_dict(handle))  # as the journal writes it
    assert not LEAKS.search(text), text
    for secret in (ACCESS_KEY, SECRET_KEY, STORAGE_SECRET, ENV_SECRET):
        assert secret not in text, (secret, text)


def test_no_handle_holds_a_presigned_url_or_a_secret(world: World, project: Path) -> None:
    world.server.faults.add("RunTask", 1, body={"tasks": [], "failures": [{"reason": "RESOURCE:CPU"}]})
    request = make_request(project, 'echo "secret length ${#TOKEN}"; echo out > "$OFFLOAD_IO_DIR/out.txt"', TASK, env={"TOKEN": ENV_SECRET})
    config = secret_config(world)
    with offload.Executor(config) as first:
        waiting = first.submit(request)  # run_task answered failures[]: the call waits for its next attempt
    assert waiting.state["task_arn"] is None and waiting.state["run"]["attempts"] == 1
    assert_clean(waiting)
    handles = [waiting]
    with offload.Executor(config) as second:  # another driver: only the journaled handle
        handle = from_json(to_json(waiting), offload.Handle)
        logs: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (status,) = second.poll([handle])
            handle = status.handle or handle
            handles.append(handle)
            logs.extend(status.logs)
            if status.state.finished:
                break
            time.sleep(0.05)
        result, more = wait_for(second, handle)
    assert result.ok, logs + more
    assert f"secret length {len(ENV_SECRET)}" in logs + more  # the task got its environment and URLs
    assert (Path(request.io_path) / "out.txt").read_text() == "out\n"
    assert any(h.state.get("task_arn") for h in handles)
    for h in handles:
        assert_clean(h)


def test_an_adopted_handle_holds_no_presigned_url_or_secret(world: World, project: Path) -> None:
    request = make_request(project, "true", TASK, env={"TOKEN": ENV_SECRET})
    config = secret_config(world)
    with offload.Executor(config) as dead:
        dead.submit(request)
    with offload.Executor(config) as resumed:
        adopted = resumed.adopt(request)
        assert adopted is not None
        assert_clean(adopted)
        result, _ = wait_for(resumed, adopted)
    assert result.ok
