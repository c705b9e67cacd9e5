"""The ``docker`` backend: a task's command in a container on a Docker Engine.

A handle's state: ``engine`` (address), ``submission`` (a random id, also a label),
``timeout``, ``phase`` (``preparing`` until the container has started: queued for a
start worker, or its image pulled or built; ``started`` once it has; ``failed`` when
it could not be started), ``container``, what the first look at the container found
(``started_at``, ``stop_signal``) and the log cursor. Nothing else is needed to poll,
collect or cancel from another process.

``submit`` returns at once: the container is started by a pool of workers
(:mod:`offload_docker.starting`). Two sets of SDK clients: ``engines`` (and the
workers' own) for the calls that may take long (pulls, builds, creating and starting
containers, archives) and ``quick``, with ``command_executor.docker.api_timeout``, for
everything the poll loop and cancel do.

Every ``offload`` command loads this module (to parse the config and select backends):
the Docker SDK, and the modules that pull, build and clean up, are imported by the
methods that use them.
"""

from __future__ import annotations

import functools
import glob
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import offload
from offload import BackendError, ConfigError, Handle, Health, Problem, Result, Status, TaskRequest, TaskState
from offload_docker import markers
from offload_docker.config import DockerSystemConfig, DockerTaskConfig, TaskSettings, parse_settings
from offload_docker.engine import Engines, is_remote
from offload_docker.phases import FAILED, PREPARING, STARTED

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from offload_docker.engine import Engines as QuickEngines
    from offload_docker.starting import Starts
    from offload_docker.watching import ContainerWatch


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
        self._removals: ThreadPoolExecutor | None = None  # made on the first removal
        self._closed = False

    # The parts that watch and start containers, made on first use: a run whose tasks
    # never reach Docker neither imports nor builds them (every run considers this backend).
    @functools.cached_property
    def watch(self) -> ContainerWatch:
        from offload_docker.watching import ContainerWatch

        return ContainerWatch(self.config, self.engines)

    @property
    def quick(self) -> QuickEngines:
        return self.watch.quick

    @functools.cached_property
    def starts(self) -> Starts:
        from offload_docker.starting import Starts

        return Starts(self.config, self.context.hook, self.watch.activity.set, self._find, self._reparse)

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
        """Queue the start and return: a worker creates and starts the container."""
        settings = self._settings(request)
        address = self.engines.address(settings.engine)
        self.quick.client(address, request.task_id)  # an engine that does not answer fails the submit
        self.watch.events(address, request.task_id)  # listening before the first container starts
        submission = uuid.uuid4().hex[:12]
        self.starts.begin(request, settings, address, submission)
        state = {"engine": address, "submission": submission, "timeout": request.timeout, "phase": PREPARING}
        return Handle(backend=self.name, task_id=request.task_id, io_path=request.io_path, state=state)

    # -- polling ---------------------------------------------------------------------

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        self.watch.begin()
        return [self._poll_one(handle) for handle in handles]

    def _poll_one(self, handle: Handle) -> Status:
        from offload_docker import outcome

        phase = handle.state.get("phase")
        if phase == FAILED:
            found = outcome.preparation_failed(handle)
            return Status(found.state, reason=found.error)
        if phase != PREPARING:
            return self.watch.poll(handle, [], changed=False)
        preparing = self.starts.poll(handle)
        if preparing.status is not None:
            return preparing.status
        return self.watch.poll(preparing.handle, preparing.logs, changed=True, seen=preparing.seen)

    # -- collecting and cancelling ---------------------------------------------------

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        """Sleep up to ``timeout``, or less when a followed log or a preparation has news."""
        self.watch.wait(timeout)

    # -- collecting and cancelling ---------------------------------------------------

    def collect(self, handle: Handle) -> Result:
        import docker.errors

        from offload_docker import outcome
        from offload_docker.container import copy_io_out
        from offload_docker.stopping import RUNNING_STATES

        found = outcome.saved(handle)
        if found is not None:
            return found.result()
        phase = handle.state.get("phase")
        if phase == FAILED:
            return outcome.preparation_failed(handle).result()
        container_id = handle.state.get("container") or self._find(handle)
        if container_id is None:
            return Result(TaskState.LOST, error=f"task {handle.task_id}: no container was started for it")
        self.watch.forget(handle, container_id)
        api = self.watch.api(handle)
        with self.watch.errors(handle)("collecting the result"):
            info = self.watch.finished_info(container_id)
            try:
                info = info or api.inspect_container(container_id)
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

        if self._closed:  # collected after close: at once
            remove()
            return
        if self._removals is None:
            from concurrent.futures import ThreadPoolExecutor

            self._removals = ThreadPoolExecutor(max_workers=2, thread_name_prefix="offload-docker-rm")
        self._removals.submit(remove)

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        """Send the stop signal and return; ``poll`` kills the container after ``grace``."""
        from offload_docker import stopping

        container_id = handle.state.get("container") or self.starts.cancel(handle, grace)
        if container_id is not None:
            self.watch.cancelled(str(container_id))
            stopping.cancel(self.watch.api(handle), self.watch.errors(handle), handle, str(container_id), grace)

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The container already made for ``request`` (same task id, same project), if any;
        one left created but never started is started now."""
        from offload_docker import outcome, resume
        from offload_docker.container import PROJECT, SUBMISSION, TASK_ID

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
        self._closed = True
        if "watch" in self.__dict__:  # made only when a task reached Docker
            self.watch.close()
        if self._removals is not None:
            self._removals.shutdown(wait=True)
        self.engines.close()

    # -- helpers ---------------------------------------------------------------------

    def _find(self, handle: Handle) -> str | None:
        """The container of this submission, found by its label (after a driver restart)."""
        from offload_docker.container import SUBMISSION

        api = self.watch.api(handle)
        with self.watch.errors(handle)("looking for the container"):
            found = api.containers(all=True, filters={"label": f"{SUBMISSION}={handle.state['submission']}"})
        return str(found[0]["Id"]) if found else None
