"""Small helpers for tests against the harness: waiting without tight timing, manifests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Generous: the machine may be busy with other tests.
TIMEOUT = 60.0
INTERVAL = 0.2


def wait_for(check: Callable[[], T | None], what: str, timeout: float = TIMEOUT, interval: float = INTERVAL) -> T:
    """Call ``check`` until it returns something truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def pod_manifest(name: str, script: str | None = None, *, image: str = "busybox:1.36", annotations: dict[str, str] | None = None,
                 container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A ``restartPolicy: Never`` pod whose container ``main`` runs ``sh -c script``."""
    main: dict[str, Any] = {"name": "main", "image": image}
    if script is not None:
        main["command"] = ["sh", "-c", script]
    main.update(container or {})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": [main], **spec},
    }


def job_manifest(name: str, script: str, *, backoff_limit: int = 0, ttl: int | None = None, annotations: dict[str, str] | None = None,
                 image: str = "busybox:1.36", **pod_spec: Any) -> dict[str, Any]:
    """A batch/v1 Job of one pod (``restartPolicy: Never``) running ``sh -c script``."""
    template = pod_manifest("unused", script, image=image, annotations=annotations, **pod_spec)
    del template["metadata"]["name"], template["apiVersion"], template["kind"]
    spec: dict[str, Any] = {"backoffLimit": backoff_limit, "template": template}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}
