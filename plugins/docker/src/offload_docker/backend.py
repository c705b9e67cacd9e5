"""The ``docker`` backend: a task's command in a container on a Docker Engine.

A handle's state: ``engine`` (address), ``submission`` (a random id, also a label),
``timeout``, ``phase`` (``preparing`` while the image is pulled or built, ``started``
once the container runs, ``failed`` when preparing failed), ``container`` and the log
cursor. Nothing else is needed to poll, collect or cancel from another process.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import docker.errors

import offload
from offload import BackendError, ConfigError, Handle, Health, Problem, Result, Status, TaskRequest, TaskState
from offload_docker import jobs, markers, outcome
from offload_docker.config import DockerSystemConfig, TaskSettings, parse_task
from offload_docker.container import PROJECT, SUBMISSION, TASK_ID, copy_io_out, launch
from offload_docker.engine import Engines, engine_errors, is_remote
from offload_docker.gc import find_orphans, remove_orphans
from offload_docker.images import prepare, present, ready_image
from offload_docker.logs import LogCursor, parse_engine_time, read_new_lines

PREPARING, STARTED, FAILED = "preparing", "started", "failed"
RUNNING_STATES = ("running", "restarting", "paused", "removing")


class DockerBackend(offload.Backend):
    """Runs tasks that have ``docker: {image: ...}`` in containers through the Docker SDK."""

    name = "docker"
    config_type = DockerSystemConfig
    install_hint = "pip install offload-docker"

    def __init__(self, config: Any = None, context: offload.BackendContext | None = None) -> None:
        super().__init__(config, context)
        self.config: DockerSystemConfig
        self.engines = Engines(self.config.host)
        self._removals: list[threading.Thread] = []
        self._removals_lock = threading.Lock()

    # -- choosing --------------------------------------------------------------------

    def usable(self, task: TaskRequest) -> list[Problem]:
        return parse_task(task)[1]

    def settings(self, request: TaskRequest) -> TaskSettings:
        found, problems = parse_task(request)
        if found is None:
            raise ConfigError([Problem(p.where, p.message, fatal=True) for p in problems])
        return found

    def _hook(self) -> Any:
        if self.context.hook is None:  # a backend made by hand, outside an Executor
            self.context = offload.BackendContext(hook=offload.make_plugin_manager().hook)
        return self.context.hook

    # -- submitting ------------------------------------------------------------------

    def submit(self, request: TaskRequest) -> Handle:
        settings = self.settings(request)
        address = self.engines.address(settings.engine)
        client = self.engines.client(address, request.task_id)
        submission = uuid.uuid4().hex[:12]
        handle = Handle(
            backend=self.name,
            task_id=request.task_id,
            io_path=request.io_path,
            state={"engine": address, "submission": submission, "timeout": request.timeout, "phase": PREPARING},
        )
        with engine_errors(address, request.task_id, "looking up the image"):
            image = ready_image(client.api, settings, self._hook())
        if image is not None:  # the common case: start now, nothing to wait for
            with engine_errors(address, request.task_id, "starting the container"):
                container_id = launch(client.api, request, settings, self.config, image, submission, is_remote(address))
            return handle.with_state(phase=STARTED, container=container_id)
        jobs.start(submission, lambda job: self._prepare_and_launch(job, request, settings, address))
        return handle

    def _prepare_and_launch(self, job: jobs.Job, request: TaskRequest, settings: TaskSettings, address: str) -> None:
        """The background part of ``submit``: pull or build, then start unless cancelled."""
        engines = Engines(self.config.host)  # its own client: the run may close ours meanwhile
        try:
            client = engines.client(address, request.task_id)
            try:
                with engine_errors(address, request.task_id, "preparing the image"):
                    image = prepare(client, address, settings, self._hook(), job.log)
            except BackendError as e:
                text = str(e)
                raise BackendError(text if text.startswith("task ") else f"task {request.task_id}: {text}") from None
            with job.lock:
                if job.cancelled:
                    return
                with engine_errors(address, request.task_id, "starting the container"):
                    job.container_id = launch(client.api, request, settings, self.config, image, job.submission, is_remote(address))
        finally:
            engines.close()

    # -- polling ---------------------------------------------------------------------

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
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
        return self._poll_container(handle, logs, changed=handle is not original)

    def _poll_preparing(self, handle: Handle) -> tuple[Handle, list[str], Status | None]:
        submission = str(handle.state["submission"])
        job = jobs.get(submission)
        if job is None:  # another process prepared it, or a driver that has since stopped
            container_id = self._find(handle)
            if container_id is not None:
                return handle.with_state(phase=STARTED, container=container_id), [], None
            if outcome.cancelled(handle):
                failed = handle.with_state(phase=FAILED)
                return failed, [], Status(TaskState.CANCELLED, reason="cancelled before it started", handle=failed)
            reason = f"task {handle.task_id}: the driver stopped while the image was being prepared and no container was started; run the task again"
            return handle, [], Status(TaskState.LOST, reason=reason)
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

    def _poll_container(self, handle: Handle, logs: list[str], changed: bool) -> Status:
        api = self._api(handle)
        container_id = str(handle.state["container"])
        address = str(handle.state["engine"])
        with engine_errors(address, handle.task_id, "inspecting the container"):
            try:
                info = api.inspect_container(container_id)
            except docker.errors.NotFound:
                return self._gone(handle, logs)
            state = info["State"]
            running = state.get("Status") in RUNNING_STATES
            if running:
                self._enforce_timeout(api, handle, state)
            new, cursor = read_new_lines(api, container_id, LogCursor.from_state(handle.state))
        logs = [*logs, *new]
        if new or changed:
            handle = handle.with_state(**cursor.to_state())
        update = handle if (new or changed) else None
        if running:
            return Status(TaskState.RUNNING, logs=logs, handle=update)
        if state.get("Status") == "created" and not outcome.cancelled(handle):
            return Status(TaskState.PENDING, logs=logs, handle=update)
        found = outcome.from_container(handle, state)
        return Status(found.state, exit_code=found.exit_code, reason=found.error, logs=logs, handle=update)

    def _enforce_timeout(self, api: Any, handle: Handle, state: dict[str, Any]) -> None:
        """Past the deadline: SIGTERM once, SIGKILL ``stop_grace`` seconds later.

        The deadline counts from the container's start as the engine recorded it, so a
        driver that restarts enforces it too.
        """
        timeout = handle.state.get("timeout")
        started = parse_engine_time(state.get("StartedAt"))
        if not timeout or started is None or time.time() < started + float(timeout):
            return
        name = outcome.marker(handle, markers.TIMED_OUT)
        sent = markers.read(handle.io_path, name)
        if sent is None:
            markers.write(handle.io_path, name, {"timeout": timeout})
            self._signal(api, str(handle.state["container"]), "SIGTERM")
        elif time.time() > float(sent["at"]) + self.config.stop_grace:
            self._signal(api, str(handle.state["container"]), "SIGKILL")

    @staticmethod
    def _signal(api: Any, container_id: str, signal: str) -> None:
        try:
            api.kill(container_id, signal=signal)
        except docker.errors.APIError:
            pass  # it stopped meanwhile

    def _gone(self, handle: Handle, logs: list[str]) -> Status:
        found = outcome.saved(handle)
        if found is not None:
            return Status(found.state, exit_code=found.exit_code, reason=found.error, logs=logs)
        reason = f"task {handle.task_id}: container {str(handle.state['container'])[:12]} no longer exists (removed outside offload?)"
        return Status(TaskState.LOST, reason=reason, logs=logs)

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        """Sleep up to ``timeout``, waking as soon as one of the containers stops.

        Uses the engine's event stream (``die`` events of these containers, from one
        second back so a stop just before the call is not missed). Handles still being
        prepared, or on several engines, fall back to sleeping.
        """
        started = [h for h in handles if h.state.get("phase") == STARTED and h.state.get("container")]
        engines = {str(h.state["engine"]) for h in started}
        if not started or len(started) != len(handles) or len(engines) != 1 or timeout <= 0:
            time.sleep(max(0.0, timeout))
            return
        api = self._api(started[0])
        now = time.time()
        filters = {"event": ["die"], "container": [str(h.state["container"]) for h in started]}
        begun = time.monotonic()
        try:
            stream = api.events(since=now - 1.0, until=now + timeout, filters=filters, decode=True)
            try:
                for _ in stream:
                    return
            finally:
                stream.close()
        except Exception:  # noqa: BLE001 - waiting is best effort; the next poll reports errors
            time.sleep(max(0.0, timeout - (time.monotonic() - begun)))

    # -- collecting and cancelling ---------------------------------------------------

    def collect(self, handle: Handle) -> Result:
        found = outcome.saved(handle)
        if found is not None:
            return found.result()
        phase = handle.state.get("phase")
        if phase == FAILED:
            return outcome.preparation_failed(handle).result()
        container_id = handle.state.get("container") or self._find(handle)
        if container_id is None:
            return Result(TaskState.LOST, error=f"task {handle.task_id}: no container was started for it")
        api = self._api(handle)
        address = str(handle.state["engine"])
        with engine_errors(address, handle.task_id, "collecting the result"):
            try:
                info = api.inspect_container(container_id)
            except docker.errors.NotFound:
                return Result(TaskState.LOST, error=f"task {handle.task_id}: container {container_id[:12]} no longer exists")
            if info["State"].get("Status") in RUNNING_STATES:
                raise BackendError(f"task {handle.task_id}: still running; collect it once it has finished")
            found = outcome.from_container(handle, info["State"])
            if is_remote(address):
                copy_io_out(api, container_id, handle.io_path)
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
        markers.write(handle.io_path, outcome.marker(handle, markers.CANCELLED))
        container_id = handle.state.get("container")
        if container_id is None:
            job = jobs.get(str(handle.state["submission"]))
            if job is not None:
                with job.lock:
                    job.cancelled = True
                    container_id = job.container_id
            else:
                container_id = self._find(handle)
        if container_id is None:
            return
        with engine_errors(str(handle.state["engine"]), handle.task_id, "stopping the container"):
            try:
                self._api(handle).stop(container_id, timeout=max(0, round(grace)))
            except docker.errors.NotFound:
                pass

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The container already started for ``request`` (same task id, same project), if any."""
        settings = self.settings(request)
        address = self.engines.address(settings.engine)
        api = self.engines.client(address, request.task_id).api
        filters = {"label": [f"{TASK_ID}={request.task_id}", f"{PROJECT}={request.project_dir}"]}
        with engine_errors(address, request.task_id, "looking for the container"):
            found = api.containers(all=True, filters=filters)
        if not found:
            return None
        container = found[0]
        state = {"engine": address, "submission": container["Labels"].get(SUBMISSION, ""), "timeout": request.timeout}
        return Handle(self.name, request.task_id, request.io_path, {**state, "phase": STARTED, "container": container["Id"]})

    def collect_garbage(self, tracked: Sequence[Handle], dry_run: bool = False, project_dir: str | None = None) -> list[str]:
        """Remove this project's stopped containers that no tracked handle names.

        ``project_dir`` defaults to the current directory: containers of other projects
        are tracked by other journals, so they are never touched.
        """
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
        address = self.engines.address(None)
        try:
            client = self.engines.client(address)
            with engine_errors(address, None, "asking the engine its version"):
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
        with self._removals_lock:
            pending, self._removals = self._removals, []
        for thread in pending:
            thread.join(timeout=60)
        self.engines.close()

    # -- helpers ---------------------------------------------------------------------

    def _api(self, handle: Handle) -> Any:
        return self.engines.client(str(handle.state["engine"]), handle.task_id).api

    def _find(self, handle: Handle) -> str | None:
        """The container of this submission, found by its label (after a driver restart)."""
        api = self._api(handle)
        with engine_errors(str(handle.state["engine"]), handle.task_id, "looking for the container"):
            found = api.containers(all=True, filters={"label": f"{SUBMISSION}={handle.state['submission']}"})
        return str(found[0]["Id"]) if found else None
