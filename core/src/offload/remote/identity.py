"""The identity of one submission, the same in every driver that submits or resumes it.

A task id is unique per task attempt, but its length and characters are the core's
business, while engines limit what they accept (names, tags, labels). So what an engine
sees is derived from SHA-256 digests of the project directory and the task id (the
project too, since a cluster is shared and embedders choose task ids). A backend passes
its own ``kind`` so that two backends never derive the same names.
"""

from __future__ import annotations

import hashlib
import os


def submission_digest(kind: str, project_dir: str, task_id: str) -> str:
    """64 hex characters naming the submission of ``task_id`` in ``project_dir``: the same for
    a retry of the call or a resumed driver."""
    digest = hashlib.sha256(f"{kind} submission\0".encode())
    digest.update(os.path.realpath(project_dir).encode("utf-8", "surrogateescape"))
    digest.update(b"\0")
    digest.update(task_id.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def project_digest(kind: str, project_dir: str) -> str:
    """16 hex characters naming the project, so that ``offload gc`` of one project finds its
    own leftovers only."""
    digest = hashlib.sha256(f"{kind} project\0".encode())
    digest.update(os.path.realpath(project_dir).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]
