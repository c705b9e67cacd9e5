"""The identity of one submission, the same in every driver that submits or resumes it.

A task id is unique per task attempt, but its length and characters are the core's
business (and may be long, with ``_`` and escapes), while ECS limits what it accepts:
``clientToken`` 64 ASCII characters, ``startedBy`` 36, tag values a small charset. So
everything ECS sees is derived from a SHA-256 digest of the project directory and the
task id (the project too, since a cluster is shared and embedders choose task ids):

* the storage keys of the task's files and its end-of-log marker, so a driver that died
  before journaling the handle knows where the project and the output are;
* RunTask's ``clientToken``, one per ``run_task`` attempt (a ``failures[]`` answer may
  count as a completed request, and repeating its token would repeat that answer);
* the ``offload.submission`` tag, by which :mod:`offload_ecs.adoption` finds the task.
"""

from __future__ import annotations

import hashlib

from offload.remote.identity import project_digest, submission_digest

#: What sets ECS's digests apart from other backends' (and keeps those of earlier journals).
KIND = "offload-ecs"
#: Tag of every task offload starts: the submission's digest (64 hex characters).
SUBMISSION_TAG = "offload.submission"


def submission_id(project_dir: str, task_id: str) -> str:
    """64 hex characters naming the submission of ``task_id`` in ``project_dir`` (a request's
    fields): the same for a retry of the call or a resumed driver."""
    return submission_digest(KIND, project_dir, task_id)


def project_tag(project_dir: str) -> str:
    """16 hex characters naming the project in storage keys, so that ``offload gc`` of one
    project lists its own leftovers only."""
    return project_digest(KIND, project_dir)


def client_token(submission: str, attempt: int) -> str:
    """RunTask's ``clientToken`` for ``attempt`` (from 1): 64 hex characters, ECS's maximum.

    ECS keeps a token for 24 hours per cluster: the same token and parameters give the
    first call's answer again, the same token with other parameters ``ConflictException``.
    """
    return hashlib.sha256(f"offload-ecs run_task\0{submission}\0{attempt}".encode()).hexdigest()


def short(submission: str) -> str:
    """The part of the digest in S3 keys and the end-of-log marker."""
    return submission[:20]
