"""The ``docker`` backend: a task's command in a container on a Docker Engine.

A handle's state: ``engine`` (address), ``submission`` (a random id, also a label),
``timeout``, ``phase`` (``preparing`` while the image is pulled or built, ``started``
once the container exists, ``failed`` when preparing failed), ``container``, what the
first look at the container found (``started_at``, ``stop_signal``) and the log cursor.
Nothing else is needed to poll, collect or cancel from another process.

Two sets of SDK clients: ``engines`` for the calls that may take long (pulls, builds,
creating and starting containers, archives) and ``quick``, with
``command_executor.docker.api_timeout``, for everything the poll loop and cancel do.

Every ``offload`` command loads this module (to parse the config and select backends):
the Docker SDK, and the modules that pull, build and clean up, are imported by the
methods that use them.
"""

from __future__ import annotations

import glob
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

import offload
from offload import BackendError, ConfigError, Handle, Health, Problem, Result, Status, TaskRequest, TaskState
from offload_docker import markers, outcome, resume, stopping
from offload_docker.config import DockerSystemConfig, DockerTaskConfig, TaskSettings, parse_settings
from offload_docker.container import PROJECT, SUBMISSION, TASK_ID, copy_io_out, launch
from offload_docker.engine import Engines, is_remote
from offload_docker.stopping import RUNNING_STATES
from offload_docker.watching import ContainerWatch

if TYPE_CHECKING:
    from offload_docker import jobs

PREPARING, STARTED, FAILED = "preparing", "started", "failed"


class DockerBackend(offload.Backend):
    """Runs tasks that have ``docker: {image: ...}`` in containers through the Docker SDK."""

    name = "docker"
    config_type = DockerSystemConfig
    task_config_type = DockerTaskConfig
    install_hint = "pip install offload-docker"

    def __init__(self, config: Any = None, context: offload.BackendContext | None = None) -> None:
        super().__init__(config, context)
        self.config: DockerSystemConfig
        self.engines = Engines(self.config.host)
        self.watch = ContainerWatch(self.config, self.engines)
        self.quick = self.watch.quick
        self._removals: list[threading.Thread] = []
        self._removals_lock = threading.Lock()

    # -- choosing --------------------------------------------------------------------

    def parse_task_config(self, sections: Mapping[str, Any], where: str) -> tuple[TaskSettings | None, list[Problem]]:
        """The task's ``docker:`` keys as :class:`TaskSettings`, or ``None`` and why not.

        No ``docker:`` or no ``image`` is "not configured" (a non-fatal problem: selection
        moves on); anything malformed is fatal; run options that give the container the
        host are warnings, or fatal when ``allow_host_access`` is false.
        """
        return parse_settings(sections.get(self.name), f"{where}: {self.name}", self.config)

    def _settings(self, request: TaskRequest) -> TaskSettings:
        """The settings the core parsed for ``request`` (see :meth:`parse_task_config`)."""
        if not isinstance(request.settings, TaskSettings):
            raise BackendError(f"task {request.task_id}: docker: request.settings is not set: submit through offload.Executor")
        return request.settings

    def _reparse(self, request: TaskRequest) -> TaskSettings:
        """The settings of a request read back from disk (``settings`` is not kept with it)."""
        sections = {key: request.executor_config[key] for key in self.owned_keys() if request.executor_config.get(key) is not None}
        found, problems = self.parse_task_config(sections, f"task {request.task_id}")
        if found is None:
            raise ConfigError([Problem(p.where, p.message, fatal=True) for p in problems if not p.warning])
        return found

    # -- submitting ------------------------------------------------------------------

    def submit(self, request: TaskRequest) -> Handle:
        from offload_docker.images import ready_image

        settings = self._settings(request)
        address = self.engines.address(settings.engine)
        submission = uuid.uuid4().hex[:12]
        handle = Handle(
            backend=self.name,
            task_id=request.task_id,
            io_path=request.io_path,
            state={"engine": address, "submission": submission, "timeout": request.timeout, "phase": PREPARING},
        )
        quick = self.quick.client(address, request.task_id)
        with self.quick.errors(address, request.task_id, "looking up the image"):
            image = ready_image(quick.api, settings, self.context.hook)
        if image is not None:  # the common case: start now, nothing to wait for
            client = self.engines.client(address, request.task_id)
            with self.engines.errors(address, request.task_id, "starting the container"):
                container_id = launch(client.api, request, settings, self.config, image, submission, is_remote(address))
            return handle.with_state(phase=STARTED, container=container_id)
        resume.keep_request(request, submission)
        self._start_preparing(request, settings, address, submission)
        return handle

    def _start_preparing(self, request: TaskRequest, settings: TaskSettings, address: str, submission: str) -> None:
        from offload_docker import jobs

        jobs.start(submission, lambda job: self._prepare_and_launch(job, request, settings, address), notify=self.watch.activity.set)

    def _prepare_and_launch(self, job: jobs.Job, request: TaskRequest, settings: TaskSettings, address: str) -> None:
        """The background part of ``submit``: pull or build, then start unless cancelled."""
        from offload_docker.images import prepare

        engines = Engines(self.config.host)  # its own client: the run may close ours meanwhile
        try:
            client = engines.client(address, request.task_id)
            job.abort.watch(client)
            try:
                with engines.errors(address, request.task_id, "preparing the image"):
                    image = prepare(client, address, settings, self.context.hook, job.log)
            except BackendError as e:
                text = str(e)
                raise BackendError(text if text.startswith("task ") else f"task {request.task_id}: {text}") from None
            with job.lock:
                if job.cancelled:
                    return
                with engines.errors(address, request.task_id, "starting the container"):
                    job.container_id = launch(client.api, request, settings, self.config, image, job.submission, is_remote(address))
        finally:
            resume.drop_request(request.io_path, job.submission)  # started, failed or cancelled: done with it
            engines.close()

    # -- polling ---------------------------------------------------------------------

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        self.watch.begin()
        return [self._poll_one(handle) for handle in handles]

    def _poll_one(self, handle: Handle) -> Status:
        phase = handle.state.get("phase")
        logs: list[str] = []
        original = handle
        if phase == PREPARING:
            handle, logs, status = self._poll_preparing(handle)
            if status is not None:
                return status
        elif phase == FAILED:
            found = outcome.preparation_failed(handle)
            return Status(found.state, reason=found.error)
        return self.watch.poll(handle, logs, changed=handle is not original)

    def _poll_preparing(self, handle: Handle) -> tuple[Handle, list[str], Status | None]:
        from offload_docker import jobs

        submission = str(handle.state["submission"])
        job = jobs.get(submission)
        if job is None:  # another process prepared it, or a driver that has since stopped
            return self._resume_preparing(handle)
        with job.lock:  # lines and outcome read together: no line logged just before the end is lost
            logs, job.lines = job.lines, []
            error, container_id, cancelled, done = job.error, job.container_id, job.cancelled, job.done
        if error is not None or (cancelled and container_id is None):
            failed = handle.with_state(phase=FAILED, error=error)
            jobs.forget(submission)
            found = outcome.preparation_failed(failed)
            return failed, logs, Status(found.state, reason=found.error, logs=logs, handle=failed)
        if container_id is not None:
            jobs.forget(submission)
            return handle.with_state(phase=STARTED, container=container_id), logs, None
        assert not done, "a finished preparation has a container, an error or a cancel"
        return handle, logs, Status(TaskState.PENDING, logs=logs)

    def _resume_preparing(self, handle: Handle) -> tuple[Handle, list[str], Status | None]:
        """A preparation that no thread of this process runs: its container, or prepare again."""
        container_id = self._find(handle)
        if container_id is not None:
            return handle.with_state(phase=STARTED, container=container_id), [], None
        if outcome.cancelled(handle):
            failed = handle.with_state(phase=FAILED)
            return failed, [], Status(TaskState.CANCELLED, reason="cancelled before it started", handle=failed)
        submission = str(handle.state["submission"])
        request = resume.kept_request(handle.io_path, submission)
        if request is None:
            reason = f"task {handle.task_id}: the driver stopped while the image was being prepared and no container was started; run the task again"
            return handle, [], Status(TaskState.LOST, reason=reason)
        try:
            settings = self._reparse(request)
        except ConfigError as e:
            failed = handle.with_state(phase=FAILED, error=f"task {handle.task_id}: {e}")
            return failed, [], Status(TaskState.FAILED, reason=f"task {handle.task_id}: {e}", handle=failed)
        request = attrs.evolve(request, settings=settings)
        self._start_preparing(request, settings, str(handle.state["engine"]), submission)
        note = "[offload: the driver stopped while the image was being prepared; preparing it again]"
        return handle, [note], Status(TaskState.PENDING, logs=[note])

    # -- collecting and cancelling ---------------------------------------------------

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        """Sleep up to ``timeout``, or less when a followed log or a preparation has news."""
        self.watch.wait(timeout)

    # -- collecting and cancelling ---------------------------------------------------

    def collect(self, handle: Handle) -> Result:
        import docker.errors

        found = outcome.saved(handle)
        if found is not None:
            return found.result()
        phase = handle.state.get("phase")
        if phase == FAILED:
            return outcome.preparation_failed(handle).result()
        container_id = handle.state.get("container") or self._find(handle)
        if container_id is None:
            return Result(TaskState.LOST, error=f"task {handle.task_id}: no container was started for it")
        self.watch.unfollow(container_id)
        api = self.watch.api(handle)
        with self.watch.errors(handle)("collecting the result"):
            try:
                info = api.inspect_container(container_id)
            except docker.errors.NotFound:
                return Result(TaskState.LOST, error=f"task {handle.task_id}: container {container_id[:12]} no longer exists")
            if info["State"].get("Status") in RUNNING_STATES:
                raise BackendError(f"task {handle.task_id}: still running; collect it once it has finished")
            found = outcome.from_container(handle, info["State"])
        address = str(handle.state["engine"])
        if is_remote(address):
            with self.engines.errors(address, handle.task_id, "copying the io directory back"):
                copy_io_out(self.engines.client(address, handle.task_id).api, container_id, handle.io_path)
        outcome.save(handle, found)
        self._remove_later(api, container_id)
        return found.result()

    def _remove_later(self, api: Any, container_id: str) -> None:
        """Remove the container in the background: the result is saved already, and
        removal (tens of ms on overlay2) need not delay the next task. ``close`` waits."""

        def remove() -> None:
            try:
                api.remove_container(container_id, force=True, v=True)
            except Exception:  # noqa: BLE001 - `offload gc` removes what is left
                pass

        thread = threading.Thread(target=remove, name=f"offload-docker-rm-{container_id[:12]}", daemon=True)
        with self._removals_lock:
            self._removals = [t for t in self._removals if t.is_alive()] + [thread]
        thread.start()

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        """Send the stop signal and return; ``poll`` kills the container after ``grace``."""
        from offload_docker import jobs

        container_id = handle.state.get("container")
        if container_id is None:
            job = jobs.get(str(handle.state["submission"]))
            if job is not None:
                with job.lock:
                    if job.container_id is None:
                        markers.write(handle.io_path, outcome.marker(handle, markers.CANCELLED))
                        job.cancelled = True
                        job.abort.stop()
                        return
                    container_id = job.container_id
            else:
                container_id = self._find(handle)
                if container_id is None:  # still preparing in a driver that stopped: never start it
                    markers.write(handle.io_path, outcome.marker(handle, markers.CANCELLED))
                    resume.drop_request(handle.io_path, str(handle.state["submission"]))
                    return
        stopping.cancel(self.watch.api(handle), self.watch.errors(handle), handle, str(container_id), grace)

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The container already made for ``request`` (same task id, same project), if any;
        one left created but never started is started now."""
        settings = self._settings(request)
        address = self.engines.address(settings.engine)
        api = self.quick.client(address, request.task_id).api
        filters = {"label": [f"{TASK_ID}={request.task_id}", f"{PROJECT}={request.project_dir}"]}
        with self.quick.errors(address, request.task_id, "looking for the container"):
            found = api.containers(all=True, filters=filters)
        if not found:
            for kept in glob.glob(os.path.join(request.io_path, markers.MARKER_DIR, "*.request.json")):
                os.remove(kept)  # a preparation cut short: the task is submitted afresh
            return None
        container = found[0]
        state = {"engine": address, "submission": container["Labels"].get(SUBMISSION, ""), "timeout": request.timeout}
        handle = Handle(self.name, request.task_id, request.io_path, {**state, "phase": STARTED, "container": container["Id"]})
        if container.get("State") == "created" and not outcome.cancelled(handle):
            with self.engines.errors(address, request.task_id, "starting the container its driver had created"):
                resume.start_created(self.engines.client(address, request.task_id).api, container["Id"], request, is_remote(address))
        return handle

    def collect_garbage(self, tracked: Sequence[Handle], dry_run: bool = False, project_dir: str | None = None) -> list[str]:
        """Remove this project's stopped containers that no tracked handle names.

        ``project_dir`` defaults to the current directory: containers of other projects
        are tracked by other journals, so they are never touched.
        """
        from offload_docker.gc import find_orphans, remove_orphans

        keep = [str(h.state["container"]) for h in tracked if h.backend == self.name and h.state.get("container")]
        keep += [self._find(h) or "" for h in tracked if h.backend == self.name and not h.state.get("container")]
        project = os.path.abspath(project_dir or os.getcwd())
        address = self.engines.address(None)
        orphans = find_orphans(keep, project_dir=project, engine=address)
        if not dry_run:
            remove_orphans(orphans, engine=address)
        return [str(orphan) for orphan in orphans]

    # -- health ----------------------------------------------------------------------

    def check(self) -> Health:
        from offload_docker.images import present

        address = self.quick.address(None)
        try:
            client = self.quick.client(address)
            with self.quick.errors(address, None, "asking the engine its version"):
                version = client.version()
                missing = [image for image in self.config.images if not present(client.api, image)]
        except BackendError as e:
            return Health(ok=False, summary=f"docker: {e}")
        details = [
            f"engine: {address}",
            f"server: Docker Engine {version.get('Version')} (API {version.get('ApiVersion')}, {version.get('Os')}/{version.get('Arch')})",
        ]
        details += [f"image {image}: {'missing' if image in missing else 'present'}" for image in self.config.images]
        summary = f"docker: engine {version.get('Version')} answers at {address}"
        if missing:
            summary += f"; {len(missing)} configured image(s) missing: {', '.join(missing)}"
        return Health(ok=not missing, summary=summary, details=tuple(details))

    def close(self) -> None:
        self.watch.close()
        with self._removals_lock:
            pending, self._removals = self._removals, []
        for thread in pending:
            thread.join(timeout=60)
        self.engines.close()

    # -- helpers ---------------------------------------------------------------------

    def _find(self, handle: Handle) -> str | None:
        """The container of this submission, found by its label (after a driver restart)."""
        api = self.watch.api(handle)
        with self.watch.errors(handle)("looking for the container"):
            found = api.containers(all=True, filters={"label": f"{SUBMISSION}={handle.state['submission']}"})
        return str(found[0]["Id"]) if found else None
