"""The apiserver's audit log, read incrementally: who made which request, with what result.

The policy logs every request at level ``Metadata`` once, at stage ``ResponseComplete``
(a watch is logged when it ends). The log backend is blocking: an event is in the file
before the apiserver finishes the response, so after a marker request of our own shows up,
every request that completed before it is in the file too (:meth:`AuditLog.sync`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted", "Panic"]
rules:
  - level: Metadata
"""


def _entry(event: dict[str, Any]) -> dict[str, Any]:
    status = event.get("responseStatus") or {}
    return {
        "user": (event.get("user") or {}).get("username", ""),
        "verb": event.get("verb", ""),
        "requestURI": event.get("requestURI", ""),
        "objectRef": event.get("objectRef"),
        "responseStatus": status,
        "code": status.get("code"),
        "userAgent": event.get("userAgent", ""),
        "stageTimestamp": event.get("stageTimestamp", ""),
    }


class AuditLog:
    """Parses the JSON-lines audit log at ``path``; ``marker`` makes one request that is logged."""

    def __init__(self, path: Path, marker: Callable[[str], None]) -> None:
        self.path = path
        self._marker = marker
        self._lock = threading.Lock()
        self._offset = 0
        self._rest = b""
        self._events: list[dict[str, Any]] = []

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if line.strip():
                self._events.append(_entry(json.loads(line)))

    def sync(self, timeout: float = 30.0) -> None:
        """Return once every request completed before this call is in the parsed events."""
        token = "audit-marker-" + uuid.uuid4().hex
        self._marker(token)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                start = len(self._events)
                self._read()
                if any(token in e["requestURI"] for e in self._events[start:]):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the audit marker {token} did not reach {self.path} in {timeout} s")
                time.sleep(0.05)

    def mark(self) -> int:
        """A position in the log: pass it as ``since`` to count only the requests made after it."""
        self.sync()
        return len(self._events)

    def requests(self, user: str, since: int = 0) -> list[dict[str, Any]]:
        self.sync()
        with self._lock:
            return [e for e in self._events[since:] if e["user"] == user]
