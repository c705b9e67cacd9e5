"""A task from ``submit`` to its started container: the ``preparing`` phase of a handle.

``submit`` keeps the request beside the task's markers (so a driver killed before the
container exists can start it later, under the same submission) and queues a job (see
:mod:`offload_docker.jobs`); a worker looks the image up, creates and starts the
container, and notes what the poll needs of it (when it started, the image's stop
signal), so the poll loop asks the engine nothing about a container it saw start.
``poll`` turns the job's outcome into the handle's ``started`` phase; a handle whose job
no thread of this process runs (its driver stopped) finds its container by label, or
starts it from the kept request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from offload import BackendError, ConfigError, Handle, Status, TaskRequest, TaskState
from offload_docker import markers, outcome, resume, stopping
from offload_docker.config import DockerSystemConfig, TaskSettings
from offload_docker.container import launch
from offload_docker.engine import Engines, is_remote
from offload_docker.phases import FAILED, STARTED

if TYPE_CHECKING:
    from offload_docker import jobs



@attrs.frozen
class Seen:
    """What a look at a container found: its status, start time (epoch seconds), stop
    signal, and ``at``: ``time.monotonic()`` just before the look."""

    status: str
    started_at: float | None
    stop_signal: str
    at: float

    @classmethod
    def of(cls, info: dict[str, Any], at: float) -> Seen:
        """From the engine's inspect of the container."""
        return cls(str(info["State"].get("Status")), outcome.engine_times(info["State"])["started_at"], stopping.stop_signal(info), at)


class ImageGone(Exception):
    """The image a start counted on was removed meanwhile: prepare it again."""


@attrs.frozen
class Preparing:
    """What a poll of a ``preparing`` handle found: the handle now, lines, and either the
    task's status (not started, or never will be) or, once started, what the start saw."""

    handle: Handle
    logs: list[str]
    status: Status | None = None
    seen: Seen | None = None


class Starts:
    """Starts the containers of one backend instance's submissions."""

    def __init__(
        self,
        config: DockerSystemConfig,
        hook: Any,
        notify: Callable[[], None],
        find: Callable[[Handle], str | None],
        reparse: Callable[[TaskRequest], TaskSettings],
    ) -> None:
        self.config = config
        self.hook = hook
        self.notify = notify
        self.find = find
        self.reparse = reparse

    # -- the worker's side -----------------------------------------------------------

    def begin(self, request: TaskRequest, settings: TaskSettings, address: str, submission: str, keep: bool = True) -> None:
        """Queue the start of ``request``'s container; ``keep``: keep the request first."""
        from offload_docker import jobs

        if keep:
            resume.keep_request(request, submission)
        jobs.start(submission, lambda job: self._launch(job, request, settings, address), self.config.start_concurrency, self.notify)

    def _launch(self, job: jobs.Job, request: TaskRequest, settings: TaskSettings, address: str) -> jobs.Work | None:
        """On a pool worker: start the container when its image is there, else hand the
        pull or build to a thread of its own."""
        from offload_docker import jobs
        from offload_docker.images import known_stop_signal, ready_image

        with job.lock:
            if job.cancelled:
                resume.drop_request(request.io_path, job.submission)
                return None
        try:
            client = jobs.engines.client(address, request.task_id)
            with jobs.engines.errors(address, request.task_id, "looking up the image"):
                image = ready_image(client.api, settings, self.hook, lambda api, ref: known_stop_signal(api, address, ref) is not None)
        except BaseException:
            resume.drop_request(request.io_path, job.submission)
            raise
        if image is not None:
            try:
                self._start(job, client.api, jobs.engines, request, settings, address, image)
                return None
            except ImageGone:
                pass
        return lambda job: self._prepare(job, request, settings, address)

    def _prepare(self, job: jobs.Job, request: TaskRequest, settings: TaskSettings, address: str) -> None:
        """In a thread of its own: pull or build, then start unless cancelled."""
        from offload_docker.images import prepare

        engines = Engines(self.config.host)  # its own client, whose responses ``abort`` watches
        try:
            client = engines.client(address, request.task_id)
            job.abort.watch(client)
            try:
                with engines.errors(address, request.task_id, "preparing the image"):
                    image = prepare(client, address, settings, self.hook, job.log)
            except BackendError as e:
                text = str(e)
                raise BackendError(text if text.startswith("task ") else f"task {request.task_id}: {text}") from None
            self._start(job, client.api, engines, request, settings, address, image)
        finally:
            resume.drop_request(request.io_path, job.submission)
            engines.close()

    def _start(self, job: jobs.Job, api: Any, engines: Engines, request: TaskRequest, settings: TaskSettings, address: str, image: str) -> None:
        """Create and start the container (not holding the job's lock: a poll never waits
        for the engine); a cancel that came meanwhile is carried out on it at once.

        What the poll needs to know of the start (its time, the stop signal) is taken here
        rather than asked of the engine: the time is this machine's just after the start
        (a timeout counts from a moment later than the engine's ``StartedAt``, never
        earlier), the stop signal the image's (offload sets none on the container).
        """
        import docker.errors

        from offload_docker.images import forget_image, known_stop_signal

        try:
            with job.lock:
                cancelled = job.cancelled
                job.launching = not cancelled
            if cancelled:
                resume.drop_request(request.io_path, job.submission)
                return
            with engines.errors(address, request.task_id, "starting the container"):
                signal = known_stop_signal(api, address, image) or "SIGTERM"
                before = time.monotonic()  # no stop of it can come before this
                try:
                    container_id = launch(api, request, settings, self.config, image, job.submission, is_remote(address))
                except docker.errors.ImageNotFound:
                    forget_image(address, image)
                    raise ImageGone(f"task {request.task_id}: image {image} was removed while the task started") from None
            seen = Seen("running", time.time(), signal, before)
            with job.lock:
                job.container_id, job.seen, job.launching = container_id, seen, False
                grace = job.cancel_grace()  # one may have come while it started
        except BaseException as e:
            with job.lock:
                job.launching = False
            if not isinstance(e, ImageGone):  # then the request is still needed: it is prepared next
                resume.drop_request(request.io_path, job.submission)
            raise
        resume.drop_request(request.io_path, job.submission)
        if grace is not None:
            handle = Handle("docker", request.task_id, request.io_path, {"engine": address, "submission": job.submission})
            try:
                stopping.cancel(api, lambda doing: engines.errors(address, request.task_id, doing), handle, container_id, grace)
            except BackendError as e:
                job.log(f"[offload: the cancel did not reach the container: {e}]")

    # -- the poll's side -------------------------------------------------------------

    def poll(self, handle: Handle) -> Preparing:
        """A ``preparing`` handle: still preparing, failed, cancelled, or started."""
        from offload_docker import jobs

        submission = str(handle.state["submission"])
        job = jobs.get(submission)
        if job is None:  # another process prepared it, or a driver that has since stopped
            return self._resume(handle)
        with job.lock:  # lines and outcome read together: no line logged just before the end is lost
            logs, job.lines = job.lines, []
            error, container_id, cancelled, launching, seen = job.error, job.container_id, job.cancelled, job.launching, job.seen
        if container_id is not None:
            jobs.forget(submission)
            return Preparing(handle.with_state(phase=STARTED, container=container_id), logs, seen=seen)
        if error is not None or (cancelled and not launching):
            failed = handle.with_state(phase=FAILED, error=error)
            jobs.forget(submission)
            found = outcome.preparation_failed(failed)
            return Preparing(failed, logs, Status(found.state, reason=found.error, logs=logs, handle=failed))
        return Preparing(handle, logs, Status(TaskState.PENDING, logs=logs))

    def _resume(self, handle: Handle) -> Preparing:
        """A preparation that no thread of this process runs: its container, or prepare again."""
        container_id = self.find(handle)
        if container_id is not None:
            return Preparing(handle.with_state(phase=STARTED, container=container_id), [])
        if outcome.cancelled(handle):
            failed = handle.with_state(phase=FAILED)
            return Preparing(failed, [], Status(TaskState.CANCELLED, reason="cancelled before it started", handle=failed))
        submission = str(handle.state["submission"])
        request = resume.kept_request(handle.io_path, submission)
        if request is None:
            reason = f"task {handle.task_id}: the driver stopped before the container was started, and its request is gone; run the task again"
            return Preparing(handle, [], Status(TaskState.LOST, reason=reason))
        try:
            settings = self.reparse(request)
        except ConfigError as e:
            failed = handle.with_state(phase=FAILED, error=f"task {handle.task_id}: {e}")
            return Preparing(failed, [], Status(TaskState.FAILED, reason=f"task {handle.task_id}: {e}", handle=failed))
        request = attrs.evolve(request, settings=settings)
        self.begin(request, settings, str(handle.state["engine"]), submission, keep=False)
        note = "[offload: the driver stopped before the container was started; starting it now]"
        return Preparing(handle, [note], Status(TaskState.PENDING, logs=[note]))

    def cancel(self, handle: Handle, grace: float) -> str | None:
        """Cancel a task whose container this process may still be starting: the
        container's id when there is one to stop, else ``None`` (nothing will start)."""
        from offload_docker import jobs

        job = jobs.get(str(handle.state["submission"]))
        if job is not None:
            with job.lock:
                if job.container_id is not None:
                    return job.container_id
                job.cancelled, job.grace = True, grace
                if job.launching:
                    return None  # the worker stops the container as soon as it has started it
                markers.write(handle.io_path, outcome.marker(handle, markers.CANCELLED))
                job.abort.stop()
                return None
        container_id = self.find(handle)
        if container_id is None:  # still preparing in a driver that stopped: never start it
            markers.write(handle.io_path, outcome.marker(handle, markers.CANCELLED))
            resume.drop_request(handle.io_path, str(handle.state["submission"]))
        return container_id
