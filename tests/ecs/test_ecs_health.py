"""``check()``: no credentials, rejected credentials, access denied, cluster not found,
bucket missing, healthy; and not configured."""

from __future__ import annotations

from typing import Any

import pytest
from ecs_harness.world import World

import offload


def check(config: dict[str, Any]) -> offload.Health:
    with offload.Executor(config) as executor:
        return executor.backends.get("ecs").check()


def test_healthy(world: World) -> None:
    health = check(world.config())
    assert health.ok, health
    assert health.summary == "ecs: ready (cluster offload-test, storage s3://offload-test-temporal/offload/)"
    assert "bucket offload-test-temporal: reachable" in health.details


def test_no_credentials(world: World) -> None:
    health = check(world.config(access_key_id=None, secret_access_key=None))
    assert not health.ok and health.summary == "ecs: no AWS credentials found"


def test_rejected_credentials(world: World) -> None:
    world.server.faults.expired_keys.add("EXPIREDKEY")
    config = world.config(access_key_id="EXPIREDKEY", secret_access_key="s")
    with offload.Executor(config) as executor:
        backend = executor.backends.get("ecs")
        backend.aws.credential_delay = 0.01  # type: ignore[attr-defined]
        health = backend.check()
    assert not health.ok and "AWS rejected the credentials" in health.summary


def test_access_denied(world: World) -> None:
    world.server.faults.add("DescribeClusters", 1, error=("AccessDeniedException", "User is not authorized to perform: ecs:DescribeClusters"))
    health = check(world.config())
    assert not health.ok and health.summary == "ecs: access denied to cluster offload-test"


def test_cluster_not_found(world: World) -> None:
    section = world.section()
    section["nope"] = section.pop("offload-test")
    section["name"] = "nope"
    health = check({"command_executor": {"type": "ecs", "ecs": section}})
    assert not health.ok and health.summary == "ecs: cluster nope not found in us-east-1"


def test_bucket_not_found(world: World) -> None:
    section = world.section()
    section["temporal_storage"]["s3"]["bucket"] = "no-such-bucket-here"
    health = check({"command_executor": {"type": "ecs", "ecs": section}})
    assert not health.ok and health.summary == "ecs: temporal storage: s3: bucket no-such-bucket-here not found"


@pytest.mark.parametrize("section", [{}, None])
def test_not_configured(section: Any) -> None:
    config: dict[str, Any] = {"command_executor": {}} if section is None else {"command_executor": {"ecs": section}}
    health = check(config)
    assert not health.ok and "not configured" in health.summary
