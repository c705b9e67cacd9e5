"""Starting tasks in the background: ``submit`` returns at once, workers start the containers.

Creating and starting a container takes the engine 0.1-1 s, and most of that is the
engine's own work, which it does for several containers at once: so ``submit`` queues a
:class:`Job` and returns, and a bounded pool of worker threads (``start_concurrency``)
looks up the image, creates and starts the container. A task whose image must be pulled
or built continues in a thread of its own (minutes), so it never holds a worker that
tasks with ready images are waiting for; ``poll`` passes on its log lines as they come
(the build log reaches the task's log live).

Jobs and workers belong to the process, by submission id, so a new backend instance in
the same process (a new ``Executor``) still finds them; the workers' engine clients are
the process's too, never closed by a backend that closes while its jobs still run.
"""

from __future__ import annotations

import _thread
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from offload_docker.engine import Engines
from offload_docker.images import Abort

if TYPE_CHECKING:
    from offload_docker.starting import Seen


@attrs.define
class Job:
    """One task's start: its log so far, and how it ended."""

    submission: str
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    lines: list[str] = attrs.field(factory=list)
    container_id: str | None = None
    #: What the start saw of the container (its time, its stop signal).
    seen: Seen | None = None
    error: str | None = None
    cancelled: bool = False
    #: The grace period of a cancel that came while the container was being started.
    grace: float = 10.0
    #: True while a worker creates and starts the container (a cancel then leaves the
    #: stopping to the worker, which has the container's id as soon as it exists).
    launching: bool = False
    #: Called when there is news (a line, the end), so the backend's ``wait`` returns.
    notify: Callable[[], None] = lambda: None
    #: Stops the pull or build in progress when the task is cancelled.
    abort: Abort = attrs.field(factory=Abort)

    def cancel_grace(self) -> float | None:
        """The grace of the cancel that came, ``None`` if none did (the caller holds ``lock``)."""
        return self.grace if self.cancelled else None

    def log(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)
        self.notify()


#: A job's work: returns ``None`` when done, or the rest of the work to run in a thread of its own.
Work = Callable[[Job], "Work | None"]

_jobs: dict[str, Job] = {}
_guard = threading.Lock()
_queue: queue.SimpleQueue[tuple[Job, Work]] = queue.SimpleQueue()
_workers = 0
#: The workers' clients (the SDK's own read timeout: creating a container may take long).
engines = Engines()


def start(submission: str, work: Work, workers: int, notify: Callable[[], None] | None = None) -> Job:
    """Queue ``work(job)`` for one of at most ``workers`` pool threads (the largest
    number any caller asked for); it sets ``container_id`` or ``error``."""
    global _workers
    job = Job(submission) if notify is None else Job(submission, notify=notify)
    with _guard:
        _jobs[submission] = job
        more, _workers = max(0, workers - _workers), max(workers, _workers)
    for _ in range(more):  # bare daemon threads: ``Thread.start`` would wait until each runs
        _thread.start_new_thread(_serve, ())
    _queue.put((job, work))
    return job


def _serve() -> None:
    while True:
        job, work = _queue.get()
        _run(job, work)


def _run(job: Job, work: Work) -> None:
    then: Work | None = None
    try:
        then = work(job)
    except Exception as e:  # noqa: BLE001 - reported as the task's error, never lost
        with job.lock:
            job.error = str(e) or type(e).__name__
    if then is not None:  # a pull or a build: in its own thread, the worker moves on
        rest = then
        threading.Thread(target=_run, args=(job, rest), name=f"offload-docker-prepare-{job.submission}", daemon=True).start()
        return
    with job.lock:
        job.launching = False
    job.notify()


def get(submission: str) -> Job | None:
    with _guard:
        return _jobs.get(submission)


def forget(submission: str) -> None:
    with _guard:
        _jobs.pop(submission, None)
