"""Background preparation of a task: pull or build its image, then start its container.

``submit`` must return promptly, but a pull or a build takes minutes; so it runs in a
thread here, and ``poll`` passes on its log lines as they come (the build log reaches
the task's log live). Jobs are kept per process, by submission id, so a new backend
instance in the same process (a new ``Executor``) still finds them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs

from offload_docker.images import Abort


@attrs.define
class Job:
    """One task's preparation: its log so far, and how it ended."""

    submission: str
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    lines: list[str] = attrs.field(factory=list)
    container_id: str | None = None
    started_at: float | None = None
    error: str | None = None
    cancelled: bool = False
    done: bool = False
    #: Called when there is news (a line, the end), so the backend's ``wait`` returns.
    notify: Callable[[], None] = lambda: None
    #: Stops the pull or build in progress when the task is cancelled.
    abort: Abort = attrs.field(factory=Abort)

    def log(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)
        self.notify()


_jobs: dict[str, Job] = {}
_guard = threading.Lock()


def start(submission: str, work: Callable[[Job], None], notify: Callable[[], None] | None = None) -> Job:
    """Run ``work(job)`` in a daemon thread; it sets ``container_id`` or ``error``."""
    job = Job(submission) if notify is None else Job(submission, notify=notify)
    with _guard:
        _jobs[submission] = job

    def run() -> None:
        try:
            work(job)
        except Exception as e:  # noqa: BLE001 - reported as the task's error, never lost
            with job.lock:
                job.error = str(e) or type(e).__name__
        finally:
            with job.lock:
                job.done = True
            job.notify()

    threading.Thread(target=run, name=f"offload-docker-{submission}", daemon=True).start()
    return job


def get(submission: str) -> Job | None:
    with _guard:
        return _jobs.get(submission)


def forget(submission: str) -> None:
    with _guard:
        _jobs.pop(submission, None)
